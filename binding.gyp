{
  "targets": [
    {
      "target_name": "ksm",
      "sources": ["native/addon.cc"],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-fvisibility=hidden", "-Wall", "-Wextra"],
      "cflags_cc": ["-fvisibility=hidden", "-Wall", "-Wextra", "-std=c++17"],
      "xcode_settings": {
        "GCC_SYMBOLS_PRIVATE_EXTERN": "YES",
        "OTHER_CPLUSPLUSFLAGS": ["-std=c++17", "-Wall", "-Wextra"]
      },
      "conditions": [
        ["OS=='linux'", {
          "sources": [
            "native/errors.cc",
            "native/memory.cc",
            "native/pagemap.cc",
            "native/process.cc",
            "native/view.cc"
          ],
          "defines": ["_GNU_SOURCE"]
        }]
      ]
    }
  ]
}
