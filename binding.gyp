{
  "variables": {
    # 1 builds with AddressSanitizer + UndefinedBehaviorSanitizer (clang):
    # `node-gyp rebuild --ksm-sanitize=1` from scripts/asan.sh (`npm run
    # test:asan`). Never for a shipped build.
    "ksm_sanitize%": "0"
  },
  "target_defaults": {
    "conditions": [
      ["ksm_sanitize in (1, '1', 'true')", {
        "cflags": ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1"],
        "cflags_cc": ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1"],
        "ldflags": ["-fsanitize=address,undefined", "-shared-libasan"]
      }]
    ]
  },
  "targets": [
    {
      "target_name": "ksm",
      "sources": ["native/addon.cc"],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      # SWALLOW_UNTHROWABLE_EXCEPTIONS: in a worker being terminated, napi_throw
      # fails; without it node-addon-api throws again from its C callback
      # wrapper and std::terminate() aborts the whole process
      # (test/hardening/lifetime.test.ts, "worker terminated while allocating").
      "defines": ["NAPI_VERSION=8", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags": ["-fvisibility=hidden", "-Wall", "-Wextra"],
      "cflags_cc": ["-fvisibility=hidden", "-Wall", "-Wextra", "-std=c++17"],
      "xcode_settings": {
        "GCC_SYMBOLS_PRIVATE_EXTERN": "YES",
        "OTHER_CPLUSPLUSFLAGS": ["-std=c++17", "-Wall", "-Wextra"]
      },
      "conditions": [
        ["OS=='linux'", {
          "sources": [
            "native/advice.cc",
            "native/attribution.cc",
            "native/errors.cc",
            "native/estimate.cc",
            "native/estimate-confirm.cc",
            "native/estimate-pagemap.cc",
            "native/estimate-sample.cc",
            "native/estimate-threads.cc",
            "native/estimate-worker.cc",
            "native/hash.cc",
            "native/memory.cc",
            "native/pagewalk.cc",
            "native/header-read.cc",
            "native/stack-pointers.cc",
            "native/procread.cc",
            "native/smaps-scan.cc",
            "native/process.cc",
            "native/view.cc"
          ],
          "defines": ["_GNU_SOURCE"]
        }]
      ]
    }
  ],
  "conditions": [
    ["OS=='linux'", {
      "targets": [
        {
          # spawnUnmerged(): clears PR_SET_MEMORY_MERGE, then execs the
          # target. Lands next to ksm.node (build/Release, prebuilds/<tuple>).
          "target_name": "ksm-unmerged-exec",
          "type": "executable",
          "sources": ["native/unmerged-exec.c"],
          "defines": ["_GNU_SOURCE"],
          "cflags": ["-Wall", "-Wextra", "-std=c11"]
        }
      ]
    }]
  ]
}
