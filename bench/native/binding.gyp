{
  # The bench's own addon: the page hash in place and two bandwidth
  # baselines (bench/native/bench.cc), over the shipped addon's hash.cc.
  # bench/lib/addon.mjs builds it into bench/native/build when bench/ first
  # needs it. Never built by `npm install` (the package's binding.gyp does not
  # name it) and never packed: prebuildify ships the first *.node of the
  # package's build/Release, which this build never writes to.
  "targets": [
    {
      "target_name": "ksm_bench",
      "sources": [
        "bench.cc",
        "../../native/errors.cc",
        "../../native/hash.cc",
        "../../native/view.cc"
      ],
      "include_dirs": ["../../native"],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-fvisibility=hidden", "-Wall", "-Wextra"],
      "cflags_cc": ["-fvisibility=hidden", "-Wall", "-Wextra", "-std=c++17"]
    }
  ]
}
