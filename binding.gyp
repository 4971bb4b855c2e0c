{
  "variables": {
    "v8_fast_calls_include%": "<!(node scripts/v8-fast-calls.js --include)"
  },
  "targets": [
    {
      "target_name": "vfio",
      "sources": [
        "native/addon.cc",
        "native/args.cc",
        "native/errors.cc",
        "native/handles.cc",
        "native/memory.cc",
        "native/ioctl.cc",
        "native/device.cc",
        "native/iommufd.cc",
        "native/dma_buffer.cc",
        "native/mapping.cc",
        "native/polled_fd.cc",
        "native/irq_watcher.cc",
        "native/event_queue.cc",
        "native/group.cc",
        "native/container.cc",
        "native/unix_socket.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]
    },
    {
      "target_name": "vfio_fast",
      "conditions": [
        ["v8_fast_calls_include==''", {"type": "none"}, {
          "sources": ["native/fast_calls.cc"],
          "cflags_cc!": ["-std=gnu++17"],
          "cflags_cc": ["-std=c++17", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-cast-function-type", "-isystem", "<(v8_fast_calls_include)"]
        }]
      ]
    }
  ]
}
