/*
 * The kernel selftest's merge-time method (tools/testing/selftests/mm/
 * ksm_tests.c, `ksm_tests -P -s SIZE`), re-done for the bench: one process
 * maps SIZE MiB of private anonymous memory, fills every byte with '*',
 * starts a CLOCK_MONOTONIC_RAW clock, advises MADV_MERGEABLE and waits for
 * two full scans; speed = SIZE / elapsed. The knobs (sleep_millisecs 0,
 * pages_to_scan = the selftest's page count) are set by the harness, which
 * also never writes `run` (2 would unmerge everyone on a shared machine).
 *
 * usage: merge-time SIZE_MIB TIMEOUT_SEC   ->  one JSON line on stdout
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_MERGEABLE
#define MADV_MERGEABLE 12
#endif

static int full_scans(unsigned long *value) {
  FILE *file = fopen("/sys/kernel/mm/ksm/full_scans", "r");
  if (!file) return -1;
  int ok = fscanf(file, "%lu", value) == 1;
  fclose(file);
  return ok ? 0 : -1;
}

static double seconds_since(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC_RAW, &now);
  return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s SIZE_MIB TIMEOUT_SEC\n", argv[0]);
    return 2;
  }
  const size_t size = (size_t)strtoul(argv[1], NULL, 10) << 20;
  const double timeout = strtod(argv[2], NULL);
  if (size == 0 || timeout <= 0) {
    fprintf(stderr, "SIZE_MIB and TIMEOUT_SEC must be positive\n");
    return 2;
  }
  char *area = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (area == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  memset(area, '*', size);

  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC_RAW, &start);
  if (madvise(area, size, MADV_MERGEABLE) != 0) {
    perror("madvise");
    munmap(area, size);
    return 1;
  }
  unsigned long first = 0, current = 0;
  if (full_scans(&first) != 0) {
    perror("full_scans");
    munmap(area, size);
    return 1;
  }
  /* A page merges only after its checksum held across two visits. */
  int status = 0;
  for (current = first; current < first + 2;) {
    if (full_scans(&current) != 0 || seconds_since(&start) > timeout) {
      status = 1;
      break;
    }
  }
  const double elapsed = seconds_since(&start);
  printf("{\"sizeMiB\":%zu,\"seconds\":%.9f,\"mibPerSec\":%.3f,\"ok\":%s}\n", size >> 20, elapsed,
         (double)(size >> 20) / elapsed, status == 0 ? "true" : "false");
  munmap(area, size);
  return status;
}
