#!/bin/sh
# usbnetd lab: runs inside the guest (from the 9p share, /mnt), started by /init.
# Runs each "NN NAME" line of /mnt/plan with a time limit, writing into
# /mnt/results/NN-NAME.{started,log,reason,dmesg,usbmon,status}. The status
# file ("RC SECONDS") is written last and synced: the host takes a scenario
# without one as not run (or, with .started, as killed by a dying guest).
S=/mnt
set -a
. /etc/lab/env
. $S/env
set +a
. $S/lib.sh
mkdir -p $S/results
dmesg -c > $S/results/boot.dmesg
{
	echo "kernel: $(uname -r)"
	echo "ready_at_s: $(cut -d' ' -f1 /proc/uptime)"
	echo "udc: $(ls /sys/class/udc 2>/dev/null | tr '\n' ' ')"
	for d in /sys/bus/usb/devices/[0-9]*-[0-9]*; do
		case $d in *:*) continue ;; esac
		[ -e "$d/idVendor" ] && echo "usb: $(basename $d) $(cat $d/idVendor):$(cat $d/idProduct) bus $(cat $d/busnum) dev $(cat $d/devnum) speed $(cat $d/speed)"
	done
} > $S/results/boot.info

scenario_script() {
	case $1 in
	baseline-*) echo "$S/scenarios/baseline.sh" ;;
	e2e-qemu-usbnet | e2e-qemu-usbnet-rndis) echo "$S/scenarios/e2e-qemu-usbnet.sh" ;;
	e2e-*) echo "$S/scenarios/e2e.sh" ;;
	rxmode-*) echo "$S/scenarios/rxmode.sh" ;;
	ifdown-*) echo "$S/scenarios/ifdown.sh" ;;
	reset-*) echo "$S/scenarios/reset.sh" ;;
	*) echo "$S/scenarios/$1.sh" ;;
	esac
}

while read -r idx name; do
	[ -n "$name" ] || continue
	tag=$idx-$name
	R=$S/results/$tag
	: > $R.started
	sync
	echo "lab-runner: start $tag at $(cut -d' ' -f1 /proc/uptime)s" > /dev/console
	monpid=
	if [ "$LAB_USBMON" = 1 ] && [ -e /sys/kernel/debug/usb/usbmon/0u ]; then
		cat /sys/kernel/debug/usb/usbmon/0u > /tmp/usbmon.txt &
		monpid=$!
	fi
	t0=$(date +%s)
	script=$(scenario_script "$name")
	LAB_SCENARIO=$name LAB_TAG=$tag LAB_RES=$R sh -c '. /mnt/lib.sh; . "$0"' "$script" > $R.log 2>&1 < /dev/null &
	spid=$!
	# The time limit is a sleeping watchdog, not a polling loop: a loop forking
	# grep/date/sleep five times a second took a fifth of the guest's CPU (perf,
	# TCG) away from the traffic being measured.
	rm -f /tmp/lab-timedout
	# LAB_LIMITS: "NAME=SECONDS ..." for scenarios whose limit is not LAB_SCENARIO_TIMEOUT
	limit=$LAB_SCENARIO_TIMEOUT
	for kv in $LAB_LIMITS; do [ "${kv%%=*}" = "$name" ] && limit=${kv#*=}; done
	(
		sleep $limit
		: > /tmp/lab-timedout
		echo "lab-runner: $tag timed out after ${limit}s" >> $R.log
		kill -TERM $spid 2>/dev/null
		sleep 2
		kill -KILL $spid 2>/dev/null
	) &
	wdpid=$!
	wait $spid
	rc=$?
	kill $wdpid 2>/dev/null
	wait $wdpid 2>/dev/null
	timedout=0
	[ -e /tmp/lab-timedout ] && timedout=1
	[ $timedout = 1 ] && rc=timeout
	secs=$(($(date +%s) - t0))
	if [ -n "$monpid" ]; then
		kill $monpid 2>/dev/null
		wait $monpid 2>/dev/null
		cp /tmp/usbmon.txt $R.usbmon
		rm -f /tmp/usbmon.txt
	fi
	{ echo "---- lab cleanup ----"; lab_cleanup; } >> $R.log 2>&1
	dmesg -c > $R.dmesg
	echo "$rc $secs" > $R.status
	sync
	echo "lab-runner: end $tag rc=$rc ${secs}s" > /dev/console
done < $S/plan
