//! Unit tests of the resources -> cgroup files mapping.
use super::*;

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

fn files(writes: &[Write]) -> Vec<(&str, &str)> {
    writes
        .iter()
        .map(|w| (w.file.as_str(), w.value.as_str()))
        .collect()
}

#[test]
fn memory_on_both_versions() {
    let r = resources(
        r#"{"memory":{"limit":100,"swap":300,"reservation":50,"disableOOMKiller":true}}"#,
    );
    let m = r.memory().as_ref().unwrap();
    let v1 = memory(m, Version::V1).unwrap();
    assert_eq!(
        files(&v1),
        [
            ("memory.limit_in_bytes", "100"),
            ("memory.memsw.limit_in_bytes", "300"),
            ("memory.soft_limit_in_bytes", "50"),
            ("memory.oom_control", "1")
        ]
    );
    let v2 = memory(m, Version::V2).unwrap();
    assert_eq!(
        files(&v2),
        [
            ("memory.max", "100"),
            ("memory.swap.max", "200"),
            ("memory.low", "50")
        ]
    );
}

#[test]
fn v2_swap_rules() {
    assert_eq!(v2_swap(Some(-1), None).unwrap().as_deref(), Some("max"));
    assert_eq!(v2_swap(Some(10), Some(-1)).unwrap().as_deref(), Some("max"));
    assert_eq!(v2_swap(Some(10), None).unwrap(), None);
    assert!(v2_swap(None, Some(10)).is_err());
    assert!(v2_swap(Some(20), Some(10)).is_err());
}

#[test]
fn v1_memory_order_follows_the_direction() {
    let mut up = vec![
        w("memory.limit_in_bytes", 200),
        w("memory.memsw.limit_in_bytes", 200),
    ];
    order_v1_memory(&mut up, 100);
    assert_eq!(up[0].file, "memory.memsw.limit_in_bytes");
    let mut down = vec![
        w("memory.limit_in_bytes", 50),
        w("memory.memsw.limit_in_bytes", 50),
    ];
    order_v1_memory(&mut down, 100);
    assert_eq!(down[0].file, "memory.limit_in_bytes");
}

#[test]
fn cpu_on_both_versions() {
    let r =
        resources(r#"{"cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0","mems":"0"}}"#);
    let c = r.cpu().as_ref().unwrap();
    assert_eq!(
        files(&cpu(c, Version::V1).unwrap()),
        [
            ("cpu.shares", "1024"),
            ("cpu.cfs_period_us", "100000"),
            ("cpu.cfs_quota_us", "50000")
        ]
    );
    assert_eq!(
        files(&cpu(c, Version::V2).unwrap()),
        [("cpu.weight", "39"), ("cpu.max", "50000 100000")]
    );
    assert_eq!(
        files(&cpuset(c)),
        [("cpuset.cpus", "0"), ("cpuset.mems", "0")]
    );
    let unlimited = resources(r#"{"cpu":{"quota":-1}}"#);
    assert_eq!(
        files(&cpu(unlimited.cpu().as_ref().unwrap(), Version::V2).unwrap()),
        [("cpu.max", "max")]
    );
    let rt = resources(r#"{"cpu":{"realtimeRuntime":5}}"#);
    assert!(cpu(rt.cpu().as_ref().unwrap(), Version::V2).is_err());
}

#[test]
fn conversions_cover_the_ranges() {
    assert_eq!(
        (shares_to_weight(2), shares_to_weight(262_144)),
        (1, 10_000)
    );
    assert_eq!(
        (blkio_to_io_weight(10), blkio_to_io_weight(1000)),
        (1, 10_000)
    );
}

#[test]
fn pids_io_and_hugetlb() {
    assert_eq!(files(&pids(10)), [("pids.max", "10")]);
    assert_eq!(files(&pids(-1)), [("pids.max", "max")]);
    assert!(pids(0).is_empty());
    let r = resources(
        r#"{"blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1000}]}}"#,
    );
    let b = r.block_io().as_ref().unwrap();
    assert_eq!(
        files(&io(b, Version::V1)),
        [
            ("blkio.weight", "500"),
            ("blkio.throttle.read_bps_device", "8:0 1000")
        ]
    );
    assert_eq!(
        files(&io(b, Version::V2)),
        [("io.weight", "default 4950"), ("io.max", "8:0 rbps=1000")]
    );
    let r = resources(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#);
    let h = r.hugepage_limits().as_ref().unwrap();
    assert_eq!(
        files(&hugetlb(h, Version::V2).unwrap()),
        [
            ("hugetlb.2MB.max", "4194304"),
            ("hugetlb.2MB.rsvd.max", "4194304")
        ]
    );
    let v1 = hugetlb(h, Version::V1).unwrap();
    assert_eq!(
        files(&v1),
        [
            ("hugetlb.2MB.limit_in_bytes", "4194304"),
            ("hugetlb.2MB.rsvd.limit_in_bytes", "4194304")
        ]
    );
    assert_eq!(
        v1.iter().map(|w| w.optional).collect::<Vec<_>>(),
        [false, true]
    );
    let bad = resources(r#"{"hugepageLimits":[{"pageSize":"2M/../x","limit":1}]}"#);
    assert!(hugetlb(bad.hugepage_limits().as_ref().unwrap(), Version::V1).is_err());
}

#[test]
fn a_limit_on_a_missing_controller_is_an_error_and_nothing_asked_is_not() {
    let r = resources(r#"{"pids":{"limit":5},"hugepageLimits":[]}"#);
    let err = plan(&r, |c| (c != Controller::Pids).then_some(Version::V1)).unwrap_err();
    assert!(err.to_string().contains("pids"), "{err}");
    let r = resources(r#"{"memory":{"limit":100}}"#);
    let planned = plan(&r, |c| (c == Controller::Memory).then_some(Version::V2)).unwrap();
    assert_eq!(planned.len(), 1);
    assert!(plan(&resources("{}"), |_| None).unwrap().is_empty());
}

#[test]
fn unified_keys() {
    assert_eq!(unified_key("memory.high").unwrap(), "memory");
    assert!(unified_key("../memory.max").is_err());
    assert!(unified_key("memory").is_err());
}

#[test]
fn zeros_are_unset_field_by_field_as_runc() {
    // docker update's shape: what it does not change comes as 0.
    let r = resources(
        r#"{"memory":{"limit":0,"reservation":0,"swap":0},
            "cpu":{"shares":0,"quota":0,"period":0,"realtimePeriod":0,"realtimeRuntime":0,"cpus":"","mems":""},
            "blockIO":{"weight":0,"leafWeight":0,"weightDevice":[{"major":8,"minor":0,"weight":0}]},
            "pids":{"limit":0},"network":{"classID":0}}"#,
    );
    for v in [Version::V1, Version::V2] {
        let planned = plan(&r, |_| Some(v)).unwrap();
        assert!(planned.is_empty(), "{v:?}: {planned:?}");
    }
    // Nothing asked of controllers the host lacks either.
    assert!(plan(&r, |_| None).unwrap().is_empty());
    // One field set among zeros: only that one.
    let r = resources(r#"{"cpu":{"shares":0,"quota":20000,"period":0}}"#);
    let c = r.cpu().as_ref().unwrap();
    assert_eq!(
        files(&cpu(c, Version::V1).unwrap()),
        [("cpu.cfs_quota_us", "20000")]
    );
    assert_eq!(files(&cpu(c, Version::V2).unwrap()), [("cpu.max", "20000")]);
}

#[test]
fn unlimited_memory_lifts_swap_where_it_is_accounted() {
    let r = resources(r#"{"memory":{"limit":-1}}"#);
    let v1 = memory(r.memory().as_ref().unwrap(), Version::V1).unwrap();
    assert_eq!(
        files(&v1),
        [
            ("memory.limit_in_bytes", "-1"),
            ("memory.memsw.limit_in_bytes", "-1")
        ]
    );
    assert!(v1[1].optional && !v1[0].optional);
}
