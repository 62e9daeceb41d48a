//! The packaging files agree with the code: the udev rule asks for every class `usbnetd
//! run` drives and lists exactly the probe's VID:PID table of vendor-specific CDC subset
//! links; the unit passes the device the way the selector parser takes it.

use usbnetd::probe::SUBSET_DEVICE_IDS;
use usbnetd::usb::Selector;

const RULE: &str = include_str!("../udev/90-usbnetd.rules");
const UNIT: &str = include_str!("../systemd/usbnetd@.service");

#[test]
fn udev_rule_lists_the_probe_subset_ids() {
    let mut in_rule: Vec<(u16, u16)> = RULE
        .lines()
        .filter(|l| l.starts_with("ATTR{idVendor}"))
        .map(|l| {
            let field = |key: &str| {
                let at = l.find(key).unwrap() + key.len();
                u16::from_str_radix(&l[at..at + 4], 16).unwrap()
            };
            (field("ATTR{idVendor}==\""), field("ATTR{idProduct}==\""))
        })
        .collect();
    let mut in_probe: Vec<(u16, u16)> = SUBSET_DEVICE_IDS.iter().map(|&(v, p, _)| (v, p)).collect();
    in_rule.sort_unstable();
    in_probe.sort_unstable();
    assert_eq!(in_rule, in_probe);
}

#[test]
fn udev_rule_starts_the_unit_for_driven_classes_and_honours_the_knob() {
    for class in ["020d00", "020600", "020a00", "0202ff", "020c07"] {
        assert!(RULE.contains(&format!("*:{class}:*")), "{class}");
    }
    let start = RULE
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("SYSTEMD_WANTS"))
        .expect("a SYSTEMD_WANTS line");
    assert!(start.contains("TAG+=\"systemd\""));
    assert!(start.contains("usbnetd@.service"));
    for class in ["ncm", "ecm", "subset", "rndis", "eem"] {
        assert!(start.contains(class), "{class} starts the unit");
    }
    let ignore = RULE.find("USBNETD_IGNORE}==\"1\"").expect("exclusion knob");
    assert!(ignore < RULE.find("ENV{SYSTEMD_WANTS}+=").unwrap());
    assert!(RULE.contains("MODE=\"0660\", GROUP=\"usbnetd\""));
}

#[test]
fn unit_device_argument_parses_as_the_port() {
    let exec = UNIT.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    assert!(exec.contains("--device /%I"), "{exec}");
    // systemd gives %I as the unescaped sysfs path without its leading slash.
    let instance = "sys/devices/platform/dummy_hcd.0/usb1/1-1";
    let arg = exec
        .split_whitespace()
        .skip_while(|w| *w != "--device")
        .nth(1)
        .unwrap()
        .replace("%I", instance);
    assert_eq!(
        arg.parse::<Selector>().unwrap(),
        Selector::Port("1-1".into())
    );
    assert!(UNIT.contains("Type=notify"));
    assert!(UNIT.contains("User=usbnetd"));
    assert!(UNIT.contains("BindsTo=%i.device"));
    let caps: Vec<&str> = UNIT
        .lines()
        .filter(|l| {
            l.starts_with("AmbientCapabilities=") || l.starts_with("CapabilityBoundingSet=")
        })
        .collect();
    assert_eq!(caps.len(), 2);
    for c in caps {
        assert!(c.ends_with("=CAP_NET_ADMIN"), "{c}");
    }
}
