// The kernel's KSM interface numbers, for C libraries whose headers predate
// them: madvise(MADV_MERGEABLE/UNMERGEABLE) since 2.6.32,
// prctl(PR_SET/GET_MEMORY_MERGE) since 6.4 (include/uapi/linux/mman-common.h,
// include/uapi/linux/prctl.h). Every caller includes this one header.
#pragma once

#include <sys/mman.h>
#include <sys/prctl.h>

#ifndef MADV_MERGEABLE
#define MADV_MERGEABLE 12
#endif
#ifndef MADV_UNMERGEABLE
#define MADV_UNMERGEABLE 13
#endif
#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif
#ifndef PR_GET_MEMORY_MERGE
#define PR_GET_MEMORY_MERGE 68
#endif
