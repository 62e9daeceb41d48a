# hostile-common: what hostile-ncm and hostile-rndis share (not a scenario of its own).
# Before sourcing it a scenario sets H, the hostile command line ("$HOSTILE" for NCM,
# "$HOSTILE --class rndis" for RNDIS), and KDRV, the kernel driver it is compared with.
HOSTILE=/mnt/bin/hostile
TAP=usbnet0
FIFO=/tmp/hostile.ctl
HSTATUS=/tmp/hostile.status
HLOG=$LAB_RES.hostile.log
TABLE=/tmp/hostile.table
: > $TABLE
[ -x $HOSTILE ] || die "no hostile binary in the share ($HOSTILE)"
mkdir -p /dev/gadget
grep -q ' /dev/gadget gadgetfs' /proc/mounts || mount -t gadgetfs gadgetfs /dev/gadget ||
	die "mount gadgetfs (module gadgetfs loaded? UDC free?)"
log "gadgetfs: $(ls /dev/gadget | tr '\n' ' ')"

# hostile_start ARGS...: plug the hostile device ($H ARGS) and wait for its enumeration
hostile_start() {
	rm -f $FIFO $HSTATUS
	mkfifo $FIFO
	echo "==== $H $* ====" >> $HLOG
	HOSTILE_TRACE=${LAB_HOSTILE_TRACE:-} $H --ctl $FIFO --status $HSTATUS "$@" >> $HLOG 2>&1 &
	HPID=$!
	wait_for 10 usbdev_ready || { tail -5 $HLOG; die "hostile device ($H $*) not enumerated within 10 s"; }
}
hostile_stop() {
	# a FIFO without a reader blocks its writer: never wait on a device that is gone
	timeout 2 sh -c "echo quit > $FIFO"
	wait_for 3 sh -c "! test -d /proc/$HPID" || kill -KILL $HPID 2>/dev/null
	wait $HPID 2>/dev/null
	wait_for 5 sh -c "! test -e $USBDEV/$GADGET_PORT" || fail "hostile device still present after quit"
}
# hcmd CMD...: send a command, wait for its "done" line; sets HDONE
hcmd() {
	_n=$(grep -c '^hostile: done' $HLOG)
	timeout 2 sh -c "echo '$*' > $FIFO" || { HDONE="device gone"; return 1; }
	wait_for 20 sh -c "[ \$(grep -c '^hostile: done' $HLOG) -gt $_n ]" || { HDONE="timeout"; return 1; }
	HDONE=$(grep '^hostile: done' $HLOG | tail -1)
}
kv() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
# hstat KEY: bulk OUT counter of the device
hstat() { kv $1 "$(cat $HSTATUS 2>/dev/null)"; }
rxp() { cat /sys/class/net/$1/statistics/rx_packets 2>/dev/null || echo 0; }
rxb() { cat /sys/class/net/$1/statistics/rx_bytes 2>/dev/null || echo 0; }
carrier() { [ "$(cat /sys/class/net/$1/carrier 2>/dev/null)" = 1 ]; }
# cell KIND CASE WHO OUTCOME: one cell of the table
cell() { echo "$1|$2|$3|$4" >> $TABLE; }

# stall_wait WHO: give the host time to clear a halt (usbnetd checks for it between steps)
stall_wait() { if [ $1 = usbnetd ]; then sleep 1.2; else sleep 0.5; fi; }
# stall_report WHO CASE WHAT S0: the end of a stall case. For usbnetd, the halt must be
# cleared (stalls_cleared above S0) and usbnetd alive, or the scenario fails; then the
# outcome ($out, $verdict) is logged and goes in the table.
stall_report() {
	if [ $1 = usbnetd ]; then
		cleared=$(($(ustat stalls_cleared) - $4))
		out="$out, $cleared stall(s) cleared"
		[ $cleared -ge 1 ] || verdict="$verdict; stall not counted"
		is_alive $UPID || verdict="usbnetd DIED"
		[ "$verdict" = ok ] || fail "usbnetd, $3: $verdict ($out)"
	fi
	log "$1 $2: $out: $verdict"
	cell fault $2 $1 "$out: $verdict"
}

# run_stall IF WHO: halt the device's bulk IN; traffic must resume (usbnetd: the halt is
# cleared and counted, and usbnetd lives)
run_stall() {
	p0=$(rxp $1)
	s0=0
	[ $2 = usbnetd ] && s0=$(ustat stalls_cleared)
	hcmd stall
	stall_wait $2
	got=$(($(rxp $1) - p0))
	out="$got of 2 frames"
	verdict=ok
	[ $got = 2 ] || verdict="traffic did not resume"
	stall_report $2 bulk-in-stall "bulk IN stall" $s0
}

# run_int_stall IF WHO: halt the interrupt endpoint; the host must clear it for the next
# notifications (link up, speed) to get through, and the data path must go on meanwhile
# (usbnetd: the halt cleared and counted, the notifications counted, usbnetd lives)
run_int_stall() {
	p0=$(rxp $1)
	s0=0
	[ $2 = usbnetd ] && { s0=$(ustat stalls_cleared); n0=$(ustat notifications); }
	hcmd int-stall || { fail "$2: int-stall did not finish"; cell fault int-stall $2 "device stuck"; return; }
	stall_wait $2
	got=$(($(rxp $1) - p0))
	if [ "$(kv io "$HDONE")" = ok ]; then notes=taken; else notes="not taken (3 s)"; fi
	out="notifications after the halt $notes, frame after: $got"
	verdict=ok
	[ "$notes" = taken ] || verdict="halt not cleared"
	[ $got = 1 ] || verdict="$verdict; frame after the halt: $got (want 1)"
	if [ $2 = usbnetd ]; then
		n=$(($(ustat notifications) - n0))
		out="$out, $n notification(s)"
		[ $n -ge 2 ] || verdict="$verdict; notifications not counted"
	fi
	stall_report $2 int-stall "interrupt IN stall" $s0
}

# finish_table: print the table (case -> usbnetd -> $KDRV), keep it, report, finish
finish_table() {
	echo "---- $LAB_SCENARIO table ----"
	echo "| kind | case | usbnetd | kernel $KDRV |"
	echo "| --- | --- | --- | --- |"
	awk -F'|' -v kd=$KDRV '{ k=$1"|"$2; if (!(k in seen)) { order[++n]=k; seen[k]=1 } v[k,$3]=$4 }
		END { for (i=1;i<=n;i++) { split(order[i],a,"|"); printf "| %s | %s | %s | %s |\n", a[1], a[2], v[order[i],"usbnetd"], v[order[i],kd] } }' $TABLE
	cp $TABLE $LAB_RES.table
	result "cases=$(cut -d'|' -f2 $TABLE | sort -u | wc -l) usbnetd_failures=$LAB_FAILS"
	finish
}
