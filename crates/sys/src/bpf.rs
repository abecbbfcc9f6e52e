//! bpf(2): load and attach the cgroup v2 device-filter program.
