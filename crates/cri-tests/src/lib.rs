//! No library: `tests/cri.rs` drives containerd's CRI plugin with runc and pier as runtime
//! handlers, through the CRI API, as the kubelet does (issues 13 and 17).
