# usbnetd lab: helpers sourced by the guest runner and every scenario (busybox ash).
# Conventions: a scenario prints what it does, calls `fail MSG` for a failed
# assertion (the first one becomes the reason shown on the host), `die MSG` when
# it cannot go on, `result key=value...` for the machine-readable RESULT line,
# and ends with `finish`. The runner's lab_cleanup undoes gadgets, namespaces
# and processes between scenarios.

: "${IP:=/usr/sbin/ip}"
: "${IPERF3:=/usr/bin/iperf3}"
: "${LAB_RES:=/tmp/lab}"
: "${LAB_SCENARIO:=adhoc}"
: "${LAB_IPERF_SECS:=3}"
G=/sys/kernel/config/usb_gadget
USBDEV=/sys/bus/usb/devices
UDC=dummy_udc.0
GADGET_PORT=1-1          # dummy_hcd is loaded first: bus 1, port 1
NET_HOST=192.168.77.1
NET_GADGET=192.168.77.2
NS=gad
LAB_FAILS=0

# ------------------------------------------------------------- basics ----
now_s() { cut -d' ' -f1 /proc/uptime; }
log() { echo "[$(now_s)] $*"; }
fail() {
	echo "FAIL: $*"
	[ -s "$LAB_RES.reason" ] || echo "$*" > "$LAB_RES.reason"
	LAB_FAILS=$((LAB_FAILS + 1))
}
die() { fail "$*"; exit 1; }
ok() { echo "ok: $*"; }
# check DESC CMD...: assertion
check() {
	_d=$1
	shift
	if "$@"; then ok "$_d"; else fail "$_d"; fi
}
# wait_for SECS CMD...: poll CMD every 0.1 s until it succeeds; 1 on timeout
wait_for() {
	_t=$1
	shift
	_end=$(awk -v n="$(now_s)" -v t="$_t" 'BEGIN{print n+t}')
	while :; do
		"$@" 2>/dev/null && return 0
		awk -v n="$(now_s)" -v e="$_end" 'BEGIN{exit !(n>=e)}' && return 1
		sleep 0.1
	done
}
result() { echo "RESULT scenario=$LAB_SCENARIO $*"; }
finish() {
	if [ "$LAB_FAILS" = 0 ]; then
		log "scenario $LAB_SCENARIO passed"
		exit 0
	fi
	log "scenario $LAB_SCENARIO failed ($LAB_FAILS failed check(s))"
	exit 1
}
is_alive() { [ -d /proc/$1 ] && ! grep -q '^State:.*Z' /proc/$1/status 2>/dev/null; }
# sysfs attribute or "-"
attr() { cat "$1" 2>/dev/null || echo -; }
sync_share() { sync; }

# ------------------------------------------------------------ gadgets ----
# Fixed identities, so captures are reproducible (documented in the README):
#   idVendor 0x1d6b, idProduct 0x0104, bcdDevice 0x0100+N, bcdUSB 0x0200
#   host_addr 02:4c:41:42:0N:01 (host side), dev_addr 02:4c:41:42:0N:02 (gadget)
#   N: ncm 1, ecm 2, rndis 3, eem 4, geth 5, acm_ncm 6
gadget_params() {
	GKIND=$1
	case $1 in
	ncm) GIDX=1 GFUNCS="ncm.usb0" ;;
	ecm) GIDX=2 GFUNCS="ecm.usb0" ;;
	rndis) GIDX=3 GFUNCS="rndis.usb0" ;;
	eem) GIDX=4 GFUNCS="eem.usb0" ;;
	geth|subset) GKIND=geth GIDX=5 GFUNCS="geth.usb0" ;;
	acm_ncm) GIDX=6 GFUNCS="acm.gs0 ncm.usb0" ;;
	*) die "unknown gadget kind $1" ;;
	esac
	GDIR=$G/lab_$GKIND
	HOST_ADDR=02:4c:41:42:0$GIDX:01
	DEV_ADDR=02:4c:41:42:0$GIDX:02
	GNETFUNC=$(echo $GFUNCS | tr ' ' '\n' | grep -v '^acm' | head -1)
}

# class (ncm ecm rndis eem subset) -> kernel host driver
class_driver() {
	case $1 in
	ncm) echo cdc_ncm ;;
	ecm) echo cdc_ether ;;
	rndis) echo rndis_host ;;
	eem) echo cdc_eem ;;
	subset) echo cdc_subset ;;
	esac
}

# Does the kernel's driver take the MAC (host_addr) from the device? cdc_eem
# and cdc_subset make up a random one.
kernel_uses_mac() {
	case $1 in ncm|ecm|rndis) return 0 ;; *) return 1 ;; esac
}
# Does the device tell its MAC? (NCM/ECM: iMACAddress; RNDIS: OID query;
# geth: iMACAddress in its MDLM/Ethernet descriptors; EEM: nothing)
device_has_mac() {
	case $1 in ncm|ecm|rndis|subset) return 0 ;; *) return 1 ;; esac
}

# No kernel driver matches the geth gadget (cdc_subset and zaurus match by
# VID:PID only): give cdc_subset a dynamic id, with the driver_info of its
# 0525:a4a2 "Linux Device" entry. lab_cleanup removes it again.
kernel_driver_prepare() {
	if [ "$1" = subset ]; then
		echo "1d6b 0104 0 0525 a4a2" > /sys/bus/usb/drivers/cdc_subset/new_id ||
			die "cannot add 1d6b:0104 to cdc_subset's new_id"
		log "host: cdc_subset new_id 1d6b:0104 (reference 0525:a4a2)"
	fi
}

gadget_create() {
	gadget_params "$1"
	log "gadget: create $GKIND ($GFUNCS) bcdDevice $(printf 0x%04x $((0x0100 + GIDX))) host_addr $HOST_ADDR dev_addr $DEV_ADDR"
	[ -d $G ] || die "no configfs usb_gadget (libcomposite not loaded?)"
	mkdir $GDIR || die "mkdir $GDIR"
	echo 0x1d6b > $GDIR/idVendor
	echo 0x0104 > $GDIR/idProduct
	printf '0x%04x\n' $((0x0100 + GIDX)) > $GDIR/bcdDevice
	echo 0x0200 > $GDIR/bcdUSB
	if [ "$GKIND" = acm_ncm ]; then
		echo 0xef > $GDIR/bDeviceClass
		echo 0x02 > $GDIR/bDeviceSubClass
		echo 0x01 > $GDIR/bDeviceProtocol
	else
		echo 0x00 > $GDIR/bDeviceClass
		echo 0x00 > $GDIR/bDeviceSubClass
		echo 0x00 > $GDIR/bDeviceProtocol
	fi
	echo 0x40 > $GDIR/bMaxPacketSize0
	mkdir $GDIR/strings/0x409
	echo "usbnetd lab" > $GDIR/strings/0x409/manufacturer
	echo "usbnetd lab $GKIND gadget" > $GDIR/strings/0x409/product
	echo "LAB-$GKIND-0001" > $GDIR/strings/0x409/serialnumber
	mkdir $GDIR/configs/c.1
	echo 100 > $GDIR/configs/c.1/MaxPower
	echo 0x80 > $GDIR/configs/c.1/bmAttributes
	mkdir $GDIR/configs/c.1/strings/0x409
	echo "$GKIND" > $GDIR/configs/c.1/strings/0x409/configuration
	for f in $GFUNCS; do
		mkdir $GDIR/functions/$f || die "cannot create function $f (module missing?)"
		if [ -e $GDIR/functions/$f/dev_addr ]; then
			echo $DEV_ADDR > $GDIR/functions/$f/dev_addr
			echo $HOST_ADDR > $GDIR/functions/$f/host_addr
		fi
		# GADGET_QMULT: queue multiplier of the network function (before linking).
		if [ -n "${GADGET_QMULT:-}" ] && [ -e $GDIR/functions/$f/qmult ]; then
			echo $GADGET_QMULT > $GDIR/functions/$f/qmult || die "cannot set qmult of $f"
		fi
		ln -s $GDIR/functions/$f $GDIR/configs/c.1/
	done
}

usbdev_ready() { [ -e $USBDEV/$GADGET_PORT/devnum ] && [ -n "$(cat $USBDEV/$GADGET_PORT/bConfigurationValue 2>/dev/null)" ]; }

gadget_plug() {
	echo $UDC > $GDIR/UDC || die "bind $GDIR to $UDC"
	wait_for 10 usbdev_ready || die "gadget $GKIND not enumerated at $GADGET_PORT within 10 s"
	BUSNUM=$(cat $USBDEV/$GADGET_PORT/busnum)
	DEVNUM=$(cat $USBDEV/$GADGET_PORT/devnum)
	DEVNODE=$(printf '/dev/bus/usb/%03d/%03d' $BUSNUM $DEVNUM)
	log "gadget: $GKIND plugged: $GADGET_PORT $(cat $USBDEV/$GADGET_PORT/idVendor):$(cat $USBDEV/$GADGET_PORT/idProduct) speed $(cat $USBDEV/$GADGET_PORT/speed) $DEVNODE"
}

gadget_unplug() {
	[ -n "$GDIR" ] && [ -e $GDIR/UDC ] && echo "" > $GDIR/UDC 2>/dev/null
	wait_for 5 sh -c "! test -e $USBDEV/$GADGET_PORT" || fail "$GADGET_PORT still present 5 s after unplug"
}

# gadget-side network interface (after plug)
gadget_ifname() { cat $GDIR/functions/$GNETFUNC/ifname; }

gadget_remove() {
	_g=$1
	[ -d "$_g" ] || return 0
	echo "" > $_g/UDC 2>/dev/null
	for _c in $_g/configs/*; do
		[ -d "$_c" ] || continue
		for _l in $_c/*; do [ -L "$_l" ] && rm -f "$_l"; done
		for _s in $_c/strings/*; do [ -d "$_s" ] && rmdir "$_s"; done
		rmdir "$_c"
	done
	for _f in $_g/functions/*; do [ -d "$_f" ] && rmdir "$_f"; done
	for _s in $_g/strings/*; do [ -d "$_s" ] && rmdir "$_s"; done
	rmdir "$_g"
}

# ------------------------------------------------------- host side -----
# interface names of the kernel netdevs bound to a USB device (port)
host_ifnames() { ls -d $USBDEV/${1:-$GADGET_PORT}:*/net/* 2>/dev/null | xargs -n1 basename 2>/dev/null; }
host_ifname() { host_ifnames "$@" | head -1; }
# driver bound to interface N of the gadget
iface_driver() { basename "$(readlink $USBDEV/${2:-$GADGET_PORT}:1.$1/driver 2>/dev/null)" 2>/dev/null; }
has_host_if() { [ -n "$(host_ifname "$@")" ]; }
iface_bound_to() { [ "$(iface_driver 0 "$2")" = "$1" ]; }
# wait for the kernel host driver and its netdev
wait_kernel_netdev() {
	wait_for 10 has_host_if || die "no kernel netdev for $GADGET_PORT within 10 s (driver on :1.0: $(iface_driver 0))"
	HOSTIF=$(host_ifname)
	log "host: kernel driver $(iface_driver 0) bound, netdev $HOSTIF ($(cat /sys/class/net/$HOSTIF/address))"
}

# ------------------------------------------------------------ network ----
# put the gadget's netdev into namespace $NS with $NET_GADGET
net_gadget_ns() {
	_gif=$(gadget_ifname)
	[ -n "$_gif" ] && [ -e /sys/class/net/$_gif ] || die "gadget netdev '$_gif' not found"
	$IP netns add $NS || die "ip netns add $NS"
	$IP link set $_gif netns $NS || die "move $_gif into netns $NS"
	$IP -n $NS link set lo up
	$IP -n $NS addr add $NET_GADGET/24 dev $_gif
	$IP -n $NS link set $_gif up
	GADGETIF=$_gif
	log "gadget: $GADGETIF in netns $NS as $NET_GADGET ($($IP netns exec $NS cat /sys/class/net/$_gif/address))"
}

net_host_if() {
	$IP link set "$1" up || die "ip link set $1 up"
	$IP addr replace $NET_HOST/24 dev "$1" || die "ip addr on $1"
}

in_ns() { $IP netns exec $NS "$@"; }

# kernel_up CLASS: a CLASS gadget plugged with the kernel's own driver bound, its netdev
# up with $NET_HOST, and the gadget's netdev in namespace $NS with $NET_GADGET
kernel_up() {
	kernel_driver_prepare $1
	gadget_create $1
	gadget_plug
	wait_kernel_netdev
	net_host_if $HOSTIF
	net_gadget_ns
}

# kernel_up_usbmon CLASS FILE: record every bus (usbmon 0u) into FILE from before the
# plug, so that the kernel driver's bind counts too; then kernel_up CLASS and check that
# its driver bound. Sets MONPID and DEVADDR (BUS:DEV as usbmon writes it).
kernel_up_usbmon() {
	cat /sys/kernel/debug/usb/usbmon/0u > $2 &
	MONPID=$!
	kernel_up $1
	check "kernel driver on 1-1:1.0 is $(class_driver $1)" iface_bound_to $(class_driver $1)
	DEVADDR=$(printf '%d:%03d' $BUSNUM $DEVNUM)
}

# ncm_gadget_flush HOSTMAC: after a replug, unstick the Linux NCM gadget (f_ncm).
# Unplugged while it is sending, f_ncm keeps its half-built NTB but its 300 us flush
# timer fires while the function is down and is never armed again, so after the replug
# its replies pile up in that NTB until 32 datagrams fill it. The lab measured it with
# the kernel's own cdc_ncm as host driver (replug-probe: 6 of 40 replugs under ping -f
# left the gadget silent; these 40 pings revived all 6). The pings go to HOSTMAC
# directly, since the gadget's ARP replies would be stranded too.
ncm_gadget_flush() {
	in_ns $IP neigh replace $NET_HOST lladdr "$1" dev $GADGETIF
	in_ns ping -c 40 -i 0.01 -W 1 $NET_HOST > /dev/null 2>&1
	in_ns $IP neigh del $NET_HOST dev $GADGETIF 2>/dev/null
	return 0
}
ping1() { ping -c 1 -W 1 "$1" >/dev/null; }
ping1_ns() { in_ns ping -c 1 -W 1 "$1" >/dev/null; }

# ping_stats [ns] TARGET COUNT: sets PING_TX PING_RX PING_AVG. Pings are
# ${LAB_PING_INTERVAL:-0.2} s apart (lab run --env LAB_PING_INTERVAL=0.01: a warm path,
# where 0.2 s leaves every cache of the emulator cold for each ping).
ping_stats() {
	_pi=${LAB_PING_INTERVAL:-0.2}
	if [ "$1" = ns ]; then
		shift
		_out=$(in_ns ping -c "$2" -i $_pi -W 2 -q "$1" 2>&1)
	else
		_out=$(ping -c "$2" -i $_pi -W 2 -q "$1" 2>&1)
	fi
	echo "$_out" | sed 's/^/  ping: /'
	PING_TX=$(echo "$_out" | awk '/packets transmitted/{print $1}')
	PING_RX=$(echo "$_out" | awk '/packets transmitted/{print $4}')
	PING_AVG=$(echo "$_out" | awk -F'[/ ]+' '/round-trip/{print $(NF-2)}')
	: "${PING_TX:=0}" "${PING_RX:=0}" "${PING_AVG:=-}"
}

iperf_server() {
	in_ns $IPERF3 -s -D -B $NET_GADGET --pidfile /tmp/iperf3-server.pid || die "iperf3 server did not start"
	wait_for 5 test -s /tmp/iperf3-server.pid || die "iperf3 server pidfile missing"
	sleep 0.3
}

# lab --profile: the QEMU plugin (tools/lab/prof/tbprof.c) zeroes its counts on
# "start" and dumps them on "stop NAME"; it removes the control file when done.
prof_ctl() {
	echo "$1" > /mnt/tbprof.ctl.tmp && mv /mnt/tbprof.ctl.tmp /mnt/tbprof.ctl
	wait_for 5 sh -c '! test -e /mnt/tbprof.ctl' || log "tbprof: no answer to '$1'"
}
prof_start() {
	[ "${LAB_PROFILE:-0}" = 1 ] || return 0
	[ -s /mnt/kallsyms ] || cat /proc/kallsyms > /mnt/kallsyms
	prof_ctl start
}
prof_stop() {
	[ "${LAB_PROFILE:-0}" = 1 ] || return 0
	prof_ctl "stop $1"
	# where usbnetd's code sits, so that the report can name its functions
	[ -n "${UPID:-}" ] && cat /proc/$UPID/maps > /mnt/$1.maps 2>/dev/null
	return 0
}

# psr PID_OR_PID/task/TID: the CPU the task last ran on (field 39 of its stat), - if gone
psr() {
	read -r _l < /proc/$1/stat 2>/dev/null || { echo -; return; }
	set -- ${_l##*") "}
	echo ${37}
}
# ring_task: usbnetd's ring thread as PID/task/TID (for psr), - when there is none
ring_task() {
	for _t in /proc/${UPID:-0}/task/*; do
		read -r _c < $_t/comm 2>/dev/null && [ "$_c" = usbnetd-ring ] && { echo ${UPID}/task/${_t##*/}; return; }
	done
	echo -
}
# bus_cpu: the CPU whose hrtimer base holds dummy_hcd's transfer timer (where the bus
# runs), empty when it is not armed
bus_cpu() { awk '/^cpu: /{c=$2} /dummy_timer/{print c; exit}' /proc/timer_list 2>/dev/null; }
# lab run --env LAB_PIN_RING=bus|other (2 vCPUs; with LAB_USBNETD_AB, variant b only):
# once usbnetd is up, before the pings, pin its ring thread to the CPU holding
# dummy_hcd's transfer timer, or to the other one, to test what placement does
pin_ring() {
	[ -n "${LAB_PIN_RING:-}" ] && [ -n "${UPID:-}" ] || return 0
	[ -z "${LAB_USBNETD_AB:-}" ] || [ "${LAB_VARIANT:-a}" = b ] || return 0
	_ring=$(ring_task)
	[ $_ring != - ] || return 0
	_bus=$(bus_cpu)
	[ -n "$_bus" ] || { log "placement: no dummy_hcd timer to pin against"; return 0; }
	_pin=$_bus
	[ "$LAB_PIN_RING" = other ] && _pin=$((1 - _bus))
	taskset -p -c $_pin ${_ring##*/} > /dev/null && log "placement: ring thread pinned to cpu$_pin (bus timer on cpu$_bus)"
}
# lab run --env LAB_PLACEMENT=1: while iperf3 runs, which CPU usbnetd's ring thread, the
# iperf3 client (PID $1) and the server were on, every 0.2 s (shell reads of /proc: a
# subshell per read, no program executed); place_stop LABEL logs how often they shared a CPU.
place_start() {
	[ "${LAB_PLACEMENT:-0}" = 1 ] || return 0
	_ring=$(ring_task)
	_srv=$(cat /tmp/iperf3-server.pid 2>/dev/null)
	_bus=$(bus_cpu)
	(
		echo "bus ${_bus:--}"
		while :; do
			_r=-
			[ $_ring != - ] && _r=$(psr $_ring)
			echo "$_r $(psr $1) $(psr ${_srv:-0})"
			sleep 0.2
		done
	) > /tmp/placement.txt 2>/dev/null &
	_place_pid=$!
}
place_stop() {
	[ -n "${_place_pid:-}" ] || return 0
	kill $_place_pid 2>/dev/null
	wait $_place_pid 2>/dev/null
	_place_pid=
	log "placement: $1: $(awk '$1 == "bus" { printf "bus timer on cpu%s; ", $2; next } $2 != "-" { n++; if ($1 == $2) rc++; if ($1 == $3) rs++; if ($2 == $3) cs++;
		if ($1 != "-" && last != "" && $1 != last) mig++; last = $1; ring[$1]++; cli[$2]++; srv[$3]++ }
		END { printf "%d samples; ring with client %d, ring with server %d, client with server %d; ring moved %d times; ring on", n, rc, rs, cs, mig;
			for (c in ring) printf " cpu%s:%d", c, ring[c]; printf "; client on"; for (c in cli) printf " cpu%s:%d", c, cli[c];
			printf "; server on"; for (c in srv) printf " cpu%s:%d", c, srv[c] }' /tmp/placement.txt)"
}

# iperf_run LABEL [iperf3 args]: sets TPUT (Mbit/s, receiver side) RETR (sender)
iperf_run() {
	_label=$1
	shift
	_f=/tmp/iperf-$_label.txt
	_prof=$(basename $LAB_RES)-$_label
	_cs0=$(ctxt_snap)
	prof_start
	$IPERF3 -c $NET_GADGET -t $LAB_IPERF_SECS -f m --connect-timeout 3000 "$@" > $_f 2>&1 &
	_cpid=$!
	place_start $_cpid
	wait $_cpid
	_rc=$?
	place_stop $_label
	prof_stop $_prof
	_cs1=$(ctxt_snap)
	# MiB the receiver got: per-MiB switches below, instructions per byte in tbprof-report
	_mib=$(awk '/ receiver$/{for(i=1;i<=NF;i++) if($i=="MBytes") print $(i-1)}' $_f | tail -1)
	[ "${LAB_PROFILE:-0}" = 1 ] && { [ -z "$_mib" ] || awk -v m="$_mib" 'BEGIN{printf "%.0f\n", m*1048576}'; } > /mnt/$_prof.bytes
	sed 's/^/  iperf3: /' $_f
	TPUT=$(awk '/ receiver$/{for(i=1;i<=NF;i++) if($i=="Mbits/sec") print $(i-1)}' $_f | tail -1)
	RETR=$(awk '/ sender$/{for(i=1;i<=NF;i++) if($i=="Mbits/sec") print $(i+1)}' $_f | tail -1)
	# context switches (every CPU) per MiB received: under TCG each switch between
	# address spaces flushes QEMU's soft TLB, so this is a cost the profile cannot show
	CSW=$(awk -v a=$_cs0 -v b=$_cs1 -v m="$_mib" 'BEGIN{ if (m > 0) printf "%.0f", (b-a)/m; else print "-" }')
	log "traffic: $_label: $((_cs1 - _cs0)) context switches, $CSW per MiB"
	# usbnetd's counters so far, straight from its stats file (refreshed once a second):
	# this runs inside measure_traffic's CPU window, where starting usbnetd would count
	[ -n "${STATS_IF:-}" ] && log "traffic: $_label: usbnetd stats: $(tr -d ' \n' < /run/usbnetd/$STATS_IF.json 2>&1)"
	case $RETR in ''|*[!0-9]*) RETR=- ;; esac
	[ $_rc = 0 ] && [ -n "$TPUT" ] || { TPUT=-; fail "iperf3 $_label failed (rc $_rc)"; }
}

# the host's (root namespace) TcpExt counters as "name=value ..."
# (tcp_ext ns: the gadget's namespace)
tcp_ext() {
	if [ "${1:-}" = ns ]; then in_ns cat /proc/net/netstat; else cat /proc/net/netstat; fi |
		awk '/^TcpExt:/{ if (!h) { split($0, n); h=1 } else { for (i = 2; i <= NF; i++) printf "%s=%s ", n[i], $i } }'
}
# tcp_ext_diff BEFORE AFTER: the counters that changed, with their increase
tcp_ext_diff() {
	echo "$1" | tr ' ' '\n' > /tmp/ns0
	echo "$2" | tr ' ' '\n' | awk -F= 'NR==FNR { if ($1 != "") b[$1] = $2; next } $1 != "" && $2 != b[$1] { printf "%s+%d ", $1, $2 - b[$1] }' /tmp/ns0 -
}
ctxt_snap() { awk '/^ctxt /{print $2}' /proc/stat; }
cpu_snap() { awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print t, $5+$6}' /proc/stat; }
# utime+stime ticks of a process
proc_ticks() { sed 's/.*) //' /proc/$1/stat 2>/dev/null | awk '{print $12+$13}'; }
# stime ticks of a process (time in the kernel on its behalf: syscalls, usbfs, TAP)
proc_sticks() { sed 's/.*) //' /proc/$1/stat 2>/dev/null | awk '{print $13}'; }

# measure_traffic [PID]: ping both ways, iperf3 both ways; sets the M_* values.
# PID: a process (usbnetd) whose CPU share over the traffic window is reported.
measure_traffic() {
	_pid=$1
	log "traffic: wait for the link"
	wait_for 15 ping1 $NET_GADGET || die "no ping reply from the gadget ($NET_GADGET) within 15 s"
	pin_ring
	wait_for 5 ping1_ns $NET_HOST || die "no ping reply from the host side ($NET_HOST) within 5 s"
	log "traffic: ping host -> gadget"
	ping_stats $NET_GADGET ${LAB_PINGS:-10}
	M_RTT_H2D=$PING_AVG
	[ "$PING_RX" -ge $((PING_TX - 1)) ] || fail "ping host->gadget: $PING_RX/$PING_TX replies"
	log "traffic: ping gadget -> host"
	ping_stats ns $NET_HOST ${LAB_PINGS:-10}
	M_RTT_D2H=$PING_AVG
	[ "$PING_RX" -ge $((PING_TX - 1)) ] || fail "ping gadget->host: $PING_RX/$PING_TX replies"
	iperf_server
	set -- $(cpu_snap)
	_c0t=$1 _c0i=$2
	_p0=0
	_s0=0
	[ -n "$_pid" ] && _p0=$(proc_ticks $_pid) && _s0=$(proc_sticks $_pid)
	_w0=$(now_s)
	log "traffic: iperf3 host -> gadget, ${LAB_IPERF_SECS}s"
	iperf_run h2d
	M_TPUT_H2D=$TPUT M_RETR_H2D=$RETR M_CSW_H2D=$CSW
	log "traffic: iperf3 gadget -> host, ${LAB_IPERF_SECS}s"
	_ns0=$(tcp_ext) _gs0=$(tcp_ext ns)
	iperf_run d2h -R
	M_TPUT_D2H=$TPUT M_RETR_D2H=$RETR M_CSW_D2H=$CSW
	_w1=$(now_s)
	set -- $(cpu_snap)
	M_SYS_CPU=$(awk -v t0=$_c0t -v i0=$_c0i -v t1=$1 -v i1=$2 'BEGIN{ if (t1>t0) printf "%.0f", 100*(1-(i1-i0)/(t1-t0)); else print "-" }')
	M_PROC_CPU=- M_PROC_SYS=-
	if [ -n "$_pid" ]; then
		_p1=$(proc_ticks $_pid)
		_s1=$(proc_sticks $_pid)
		[ -n "$_p1" ] && M_PROC_CPU=$(awk -v a=$_p0 -v b=$_p1 -v w0=$_w0 -v w1=$_w1 'BEGIN{ printf "%.0f", (b-a)/((w1-w0)*100)*100 }')
		[ -n "$_s1" ] && M_PROC_SYS=$(awk -v a=$_s0 -v b=$_s1 -v w0=$_w0 -v w1=$_w1 'BEGIN{ printf "%.0f", (b-a)/((w1-w0)*100)*100 }')
	fi
	# after the CPU window closes, so that these readings do not count in it
	log "traffic: host TCP counters that moved during gadget -> host: $(tcp_ext_diff "$_ns0" "$(tcp_ext)")"
	log "traffic: gadget TCP counters that moved during gadget -> host: $(tcp_ext_diff "$_gs0" "$(tcp_ext ns)")"
	log "traffic: gadget netdev: $($IP -n $NS -s link show $GADGETIF | tr '\n' ' ')"
	# the gadget's qdisc (fq_codel) drops what waited in it over 5 ms; no netdev counter shows that
	log "traffic: gadget qdisc: $(in_ns /usr/sbin/tc -s qdisc show dev $GADGETIF 2>&1 | tr '\n' ' ' | tr -s ' ')"
	kill $(cat /tmp/iperf3-server.pid 2>/dev/null) 2>/dev/null
	M_RTT_AVG=$(awk -v a=$M_RTT_H2D -v b=$M_RTT_D2H 'BEGIN{ if (a=="-"||b=="-") print "-"; else printf "%.3f", (a+b)/2 }')
	M_RETR=$(awk -v a=$M_RETR_H2D -v b=$M_RETR_D2H 'BEGIN{ if (a=="-"||b=="-") print "-"; else print a+b }')
	M_KV="tput_h2d_mbps=$M_TPUT_H2D tput_d2h_mbps=$M_TPUT_D2H rtt_h2d_ms=$M_RTT_H2D rtt_d2h_ms=$M_RTT_D2H rtt_avg_ms=$M_RTT_AVG retrans_h2d=$M_RETR_H2D retrans_d2h=$M_RETR_D2H retrans=$M_RETR sys_cpu_pct=$M_SYS_CPU csw_h2d_per_mib=$M_CSW_H2D csw_d2h_per_mib=$M_CSW_D2H"
	for _v in "$M_TPUT_H2D" "$M_TPUT_D2H"; do
		[ "$_v" != - ] && awk -v v="$_v" 'BEGIN{exit !(v>=1)}' || fail "throughput $_v Mbit/s below 1 Mbit/s"
	done
}

# ------------------------------------------------------------ usbnetd ----
USBNETD=/mnt/bin/usbnetd
LAB_TAP=usbnet0
: "${GNUENV:=/usr/lib/lab/env}"
# start_usbnetd ARGS...: background, log to $LAB_RES.usbnetd.log; sets UPID
start_usbnetd() {
	[ -x $USBNETD ] || die "no usbnetd binary in the share ($USBNETD)"
	[ ! -e /sys/class/net/$LAB_TAP ] || die "$LAB_TAP exists before usbnetd started"
	# lab --profile: no ASLR, so that usbnetd's blocks keep one address in the counts
	[ "${LAB_PROFILE:-0}" = 1 ] && echo 0 > /proc/sys/kernel/randomize_va_space
	# lab run --env LAB_RUST_LOG=FILTER: usbnetd's log filter (e.g. usbnetd::class=trace)
	# lab run --env LAB_USBNETD_ARGS="...": extra arguments for every usbnetd run
	# lab run --env LAB_USBNETD_AB="...": every second usbnetd run (2nd, 4th, ...) gets
	# these extra arguments too: an A/B of an option within one boot (the variant is
	# logged and given as usbnetd_variant= in the e2e RESULT line)
	# lab --usbnetd-b PATH: every second run uses that build instead (/mnt/bin/usbnetd-b)
	LAB_VARIANT=a
	_bin=$USBNETD
	if [ -n "${LAB_USBNETD_AB:-}" ] || [ "${LAB_USBNETD_B:-0}" = 1 ]; then
		_n=$(($(cat /tmp/ab-count 2>/dev/null || echo 0) + 1))
		echo $_n > /tmp/ab-count
		[ $((_n % 2)) = 0 ] && LAB_VARIANT=b
	fi
	[ $LAB_VARIANT = b ] && set -- "$@" ${LAB_USBNETD_AB:-}
	[ $LAB_VARIANT = b ] && [ "${LAB_USBNETD_B:-0}" = 1 ] && _bin=/mnt/bin/usbnetd-b
	# every argument this run got, for checks that depend on them (e2e: --sched)
	USBNETD_ARGV="$* ${LAB_USBNETD_ARGS:-}"
	log "usbnetd: $_bin $USBNETD_ARGV (variant $LAB_VARIANT)"
	# ash starts background jobs with SIGINT/SIGQUIT ignored: undo that, as a
	# terminal would, so that usbnetd sees an ordinary SIGINT
	LD_LIBRARY_PATH=/mnt/bin/lib RUST_BACKTRACE=1 $GNUENV --default-signal=INT,QUIT,TERM \
		${LAB_RUST_LOG:+RUST_LOG=$LAB_RUST_LOG} $_bin "$@" ${LAB_USBNETD_ARGS:-} > $LAB_RES.usbnetd.log 2>&1 < /dev/null &
	UPID=$!
}

# wait_usbnetd_if NAME SECS: wait for the TAP to exist (usbnetd alive), bring it
# up, wait for carrier. Dies with usbnetd's exit status if it exits first.
usbnetd_gone_early() {
	wait $UPID
	_rc=$?
	echo "---- usbnetd log (tail) ----"
	tail -20 $LAB_RES.usbnetd.log
	die "usbnetd exited with status $_rc before $1 was up"
}
wait_usbnetd_if() {
	_if=$1 _secs=$2
	_end=$(awk -v n="$(now_s)" -v t="$_secs" 'BEGIN{print n+t}')
	while [ ! -e /sys/class/net/$_if ]; do
		is_alive $UPID || usbnetd_gone_early $_if
		awk -v n="$(now_s)" -v e="$_end" 'BEGIN{exit !(n>=e)}' && die "usbnetd did not create $_if within ${_secs}s"
		sleep 0.1
	done
	log "usbnetd: $_if exists after $(awk -v n="$(now_s)" -v e="$_end" -v t="$_secs" 'BEGIN{printf "%.1f", t-(e-n)}')s"
	$IP link set $_if up || fail "ip link set $_if up"
	while [ "$(cat /sys/class/net/$_if/carrier 2>/dev/null)" != 1 ]; do
		is_alive $UPID || usbnetd_gone_early $_if
		awk -v n="$(now_s)" -v e="$_end" 'BEGIN{exit !(n>=e)}' && die "$_if has no carrier within ${_secs}s"
		sleep 0.1
	done
	log "usbnetd: $_if has carrier"
}

# stop_usbnetd: SIGINT, must exit 0 within 2 s
stop_usbnetd() {
	if ! is_alive $UPID; then
		wait $UPID
		fail "usbnetd had already exited (status $?) before SIGINT"
		return
	fi
	_t0=$(now_s)
	kill -INT $UPID
	if wait_for 2 sh -c "! test -d /proc/$UPID || grep -q '^State:.*Z' /proc/$UPID/status"; then
		wait $UPID
		_rc=$?
		log "usbnetd: exited with status $_rc $(awk -v a=$_t0 -v b=$(now_s) 'BEGIN{printf "%.2f", b-a}')s after SIGINT"
		[ $_rc = 0 ] || fail "usbnetd exited with status $_rc after SIGINT (want 0)"
	else
		fail "usbnetd still running 2 s after SIGINT"
		kill -KILL $UPID 2>/dev/null
		wait $UPID
	fi
}

# ustat KEY: usbnetd's counter KEY for interface $TAP from `usbnetd stats --json`, 0 when
# absent (its stats file is written once a second)
ustat() {
	LD_LIBRARY_PATH=/mnt/bin/lib timeout 5 $USBNETD stats $TAP --json 2>/dev/null |
		tr -d ' ",' | awk -F: -v k=$1 '$1==k{v=$2} END{print v+0}'
}

# -------------------------------------------------------------- cleanup ----
# Between scenarios (run by the runner): kill every user process but init and
# the runner, remove gadgets, namespaces and lab addresses.
lab_cleanup() {
	if [ "${LAB_GUEST:-}" = systemd ]; then
		# systemd guest: stop the instances, then kill what the scenario left in the
		# runner's unit (all but the runner and its parent, lab-runner.service's script)
		systemctl stop 'usbnetd@*' 2>/dev/null
		for _n in $(cat /sys/fs/cgroup/system.slice/lab-runner.service/cgroup.procs 2>/dev/null); do
			[ "$_n" = $$ ] || [ "$_n" = $PPID ] || kill -KILL $_n 2>/dev/null
		done
		rm -f /etc/systemd/network/50-lab-*.network
	else
		for _p in /proc/[0-9]*; do
			_n=${_p#/proc/}
			[ "$_n" = 1 ] || [ "$_n" = $$ ] && continue
			[ -s $_p/cmdline ] || continue # kernel thread
			kill -KILL $_n 2>/dev/null
		done
	fi
	for _g in $G/*; do
		[ -d "$_g" ] && gadget_remove "$_g"
	done
	wait_for 5 sh -c "! test -e $USBDEV/$GADGET_PORT" || echo "cleanup: $GADGET_PORT still present"
	$IP -all netns delete 2>/dev/null
	for _i in /sys/class/net/*; do
		[ "${_i##*/}" = lo ] || $IP -4 addr flush dev "${_i##*/}" 2>/dev/null
	done
	grep -qi '^1d6b 0104' /sys/bus/usb/drivers/cdc_subset/new_id 2>/dev/null &&
		echo "1d6b 0104" > /sys/bus/usb/drivers/cdc_subset/remove_id
	# a TAP left behind is deleted; a kernel netdev left renamed (a stand-in
	# killed hard) is renamed out of the way
	for _i in $LAB_TAP; do
		[ -e /sys/class/net/$_i ] || continue
		$IP link del $_i 2>/dev/null ||
			{ _k=0; while [ -e /sys/class/net/stray$_k ]; do _k=$((_k + 1)); done
			  $IP link set $_i down; $IP link set $_i name stray$_k; }
		echo "cleanup: $_i was left behind"
	done
	rm -f /tmp/iperf* /tmp/lab-* /tmp/hostile*
	# the hostile device's gadgetfs (its processes are gone: the UDC is free again)
	grep -q ' /dev/gadget gadgetfs' /proc/mounts && umount /dev/gadget
	# a fault scenario may have lowered the usbfs memory cap
	[ -w /sys/module/usbcore/parameters/usbfs_memory_mb ] &&
		echo 16 > /sys/module/usbcore/parameters/usbfs_memory_mb
	echo "cleanup: done"
}

# ------------------------------------------------------ systemd guest ----
# sd-* scenarios: Debian with systemd as init, usbnetd installed from its .deb.

# sd_prepare: both dummy_hcd buses (dummy_udc.0 -> bus 1, dummy_udc.1 -> bus 2), gadget
# functions, configfs
sd_prepare() {
	[ "${LAB_GUEST:-}" = systemd ] || die "the sd-* scenarios run in the systemd guest"
	[ -e /sys/class/udc/dummy_udc.1 ] || modprobe dummy_hcd num=2 || die "modprobe dummy_hcd num=2"
	modprobe libcomposite && modprobe usb_f_ncm || die "modprobe libcomposite usb_f_ncm"
	grep -q ' /sys/kernel/config ' /proc/mounts || mount -t configfs configfs /sys/kernel/config
	[ -e /sys/class/udc/dummy_udc.1 ] || die "no dummy_udc.1 after modprobe dummy_hcd num=2"
	log "udcs: $(ls /sys/class/udc | tr '\n' ' ')"
}

# sd_install: dpkg -i the package the host built (tools/package), as a user would
sd_install() {
	[ -f /mnt/bin/usbnetd.deb ] || die "no usbnetd.deb in the share"
	if dpkg-query -W -f='${Status}' usbnetd 2>/dev/null | grep 'install ok installed' >/dev/null; then
		log "usbnetd package already installed"
		return 0
	fi
	_t=$(now_s)
	dpkg -i /mnt/bin/usbnetd.deb > /tmp/lab-dpkg.log 2>&1 || { cat /tmp/lab-dpkg.log; die "dpkg -i usbnetd.deb failed"; }
	sed 's/^/  dpkg: /' /tmp/lab-dpkg.log
	log "dpkg -i took $(awk -v a=$_t -v b=$(now_s) 'BEGIN{printf "%.1f", b-a}')s"
}

# sd_network NAME MAC ADDRESS/PREFIX: systemd-networkd gives the interface with MAC an
# address (the hand-off to the network manager of the machine)
sd_network() {
	mkdir -p /etc/systemd/network
	printf '[Match]\nMACAddress=%s\nDriver=tun\n\n[Network]\nAddress=%s\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' \
		"$2" "$3" > /etc/systemd/network/50-lab-$1.network
}

sd_networkd_start() {
	systemctl restart systemd-networkd || die "systemd-networkd does not start"
	log "systemd-networkd: $(systemctl is-active systemd-networkd)"
}

# sd_gadget NAME HOSTMAC DEVMAC SERIAL: an NCM gadget at $G/NAME (not plugged)
sd_gadget() {
	_g=$G/$1
	mkdir $_g || die "mkdir $_g"
	echo 0x1d6b > $_g/idVendor
	echo 0x0104 > $_g/idProduct
	echo 0x0101 > $_g/bcdDevice
	echo 0x0200 > $_g/bcdUSB
	mkdir $_g/strings/0x409
	echo "usbnetd lab" > $_g/strings/0x409/manufacturer
	echo "usbnetd lab ncm gadget $1" > $_g/strings/0x409/product
	echo "$4" > $_g/strings/0x409/serialnumber
	mkdir $_g/configs/c.1
	echo 100 > $_g/configs/c.1/MaxPower
	mkdir $_g/functions/ncm.usb0 || die "cannot create an NCM function"
	echo $3 > $_g/functions/ncm.usb0/dev_addr
	echo $2 > $_g/functions/ncm.usb0/host_addr
	ln -s $_g/functions/ncm.usb0 $_g/configs/c.1/
}

# the instance usbnetd@.service gets for the device at bus-port $1
sd_instance() { systemd-escape -p "$(readlink -f $USBDEV/$1)"; }
sd_unit_active() { [ "$(systemctl is-active "usbnetd@$(sd_instance $1).service" 2>/dev/null)" = active ]; }
sd_unit_inactive() { ! systemctl is-active --quiet "usbnetd@$1.service"; }
sd_unit_not_failed() { ! systemctl is-failed --quiet "usbnetd@$1.service"; }
# monotonic time (s since boot) of the last journal line of unit $1 that contains $2
sd_journal_t() {
	journalctl -o short-monotonic --no-pager -u "$1" 2>/dev/null | grep -F "$2" | tail -1 |
		sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p'
}
# the same, waiting up to 5 s for a line later than $3; "-" when none comes
sd_journal_after() {
	_k=0
	while [ $_k -lt 25 ]; do
		_t=$(sd_journal_t "$1" "$2")
		[ -n "$_t" ] && awk -v t=$_t -v a=$3 'BEGIN{exit !(t >= a)}' && { echo $_t; return 0; }
		sleep 0.2
		_k=$((_k + 1))
	done
	echo -
}
sd_main_pid() { systemctl show -p MainPID --value "usbnetd@$1.service"; }
carrier_up() { [ "$(cat /sys/class/net/$1/carrier 2>/dev/null)" = 1 ]; }
no_usbnetd_running() { [ -z "$(pgrep -x usbnetd)" ]; }
tap_name() { echo "enx$(echo $1 | tr -d :)"; }
# seconds since $1 (from now_s)
since() { awk -v a=$1 -v b=$(now_s) 'BEGIN{printf "%.2f", b-a}'; }
