/*
 * hostile: a CDC-NCM device on gadgetfs that lies.
 *
 * It enumerates on the first free UDC (dummy_udc in the lab) as a CDC-NCM function, answers
 * the NCM class requests, and then does what it is told on a command FIFO: send a case of
 * the hostile catalogue on bulk IN (valid NTBs around a malformed one), send notification
 * floods or orphaned split notifications, stall its bulk IN, send valid frames. It counts
 * and checks what the host sends on bulk OUT and writes the counters to a status file.
 * Bring-up lies (GET_NTB_PARAMETERS replies, descriptors) are chosen on the command line.
 * With --class rndis it is an RNDIS function instead (rndis.c, included at the end): the
 * same commands run RNDIS cases, and --reply NAME picks a lying INITIALIZE or QUERY reply.
 *
 * gadgetfs rules this follows (drivers/usb/gadget/legacy/inode.c): ep0 takes tag 0 + the
 * full-speed configuration + the high-speed one + the device descriptor; endpoint files are
 * enabled (tag 1 + FS + HS endpoint descriptor) once the host has set the configuration;
 * class requests and string descriptors reach us once ep0 has been read; a control request
 * is acked by a zero-length read, stalled by I/O in the wrong direction; an IN endpoint is
 * halted by reading it; a transfer never ends with a ZLP (a block that would end on a packet
 * boundary gets one pad byte); closing ep0 unplugs.
 *
 *   hostile [--params NAME] [--desc NAME] [--ctl FIFO] [--status FILE] [--gadget DIR]
 *   hostile --class rndis [--reply NAME] [--ctl FIFO] [--status FILE] [--gadget DIR]
 *   hostile [--class rndis] --list  the catalogue: data, notify, params and desc cases
 *                                   (RNDIS: data, notify and reply cases)
 *   hostile --dump-seeds DIR        write both catalogues' bytes as fuzz seeds into
 *                                   DIR/{ntb,ntb_params,notify,descriptors,rndis}/
 *                                   (no gadgetfs)
 *
 * Commands on the FIFO, one per line; each answers "done ..." on stdout:
 *   case NAME     valid NTB, the malformed transfer NAME, valid NTB
 *                 -> "done case NAME expect_min=A expect_max=B"
 *                 (frames a correct host delivers: A if it is strict, B at most)
 *   notify NAME   a notification case on interrupt IN (ends with NETWORK_CONNECTION up)
 *   stall         halt bulk IN (the host must clear it), then one valid NTB
 *   int-stall     halt interrupt IN, then NETWORK_CONNECTION up + CONNECTION_SPEED_CHANGE
 *                 (they get through only once the host has cleared the halt) and one
 *                 valid NTB
 *   valid N       N valid NTBs of one frame each
 *   connect       NETWORK_CONNECTION up + CONNECTION_SPEED_CHANGE
 *   pause-out S   read nothing on bulk OUT for S seconds (the host's transfers wait, as
 *                 on a device whose firmware stopped taking data), then read again
 *   quit          close ep0 (unplug) and exit
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/usb/ch9.h>
#include <linux/usb/gadgetfs.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define HS_BULK 512
#define MAXNTB 16384
#define NOTIFY_MPS 16
#define EP_IN_ADDR 0x81
#define EP_OUT_ADDR 0x02
#define EP_INT_ADDR 0x85

static const char *gadget_dir = "/dev/gadget";
static const char *ctl_path;
static const char *status_path = "/tmp/hostile.status";
static const char *params_case = "normal";
static const char *desc_case = "normal";

static int ep0_fd = -1;
static int ep_in = -1, ep_out = -1, ep_int = -1;
static pthread_mutex_t ep_lock = PTHREAD_MUTEX_INITIALIZER;
static int started_threads;

static atomic_ulong out_transfers, out_good, out_bad, out_frames, out_bytes, out_oversize;
static atomic_ulong in_transfers, in_errors;
/* "pause-out": bulk OUT is not read (the host's transfers wait) until this CLOCK_MONOTONIC ms */
static atomic_ulong out_paused_until;

/* The RNDIS personality (rndis.c, included at the end of this file). */
static int rndis_mode;
static const char *reply_case = "normal";
#define RNDIS_NOTIFY_MPS 8
#define RNDIS_MAX_XFER 1600	/* MaxTransferSize the normal RNDIS device advertises */
static atomic_ulong ka_cmplt, halts, sets, queries, inits, notifications, rq_dropped;
static size_t rndis_config(uint8_t *b, int hs);
static int rndis_setup(const struct usb_ctrlrequest *s);
static void rndis_check_out(const uint8_t *b, size_t n);
static int rndis_send_valid(void);
static void rndis_data_case(const char *name);
static void rndis_status_case(const char *name);
static void rndis_connect(void);
static void *announcer(void *arg);
static void rndis_dump_seeds(const char *dir, int *count);
static void rndis_list(void);
static int rndis_reply_known(const char *name);

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "hostile: error: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("hostile: ");
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
}

static void put16(uint8_t *p, unsigned v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
}
static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v & 0xffff);
	put16(p + 2, v >> 16);
}
static unsigned get16(const uint8_t *p) { return p[0] | (p[1] << 8); }
static uint32_t get32(const uint8_t *p) { return get16(p) | ((uint32_t)get16(p + 2) << 16); }

/* ------------------------------------------------------------------ descriptors ---- */

static const char *string_of(int idx)
{
	switch (idx) {
	case 1: return "usbnetd lab";
	case 2: return rndis_mode ? "usbnetd hostile RNDIS" : "usbnetd hostile NCM";
	case 3: return "HOSTILE-0001";
	case 4: return strcmp(desc_case, "mac-bad") ? "024C41420901" : "02:4C:41:42:09";
	default: return NULL;
	}
}

/* The configuration: CDC-NCM control interface (header, union, ethernet, NCM, interrupt
 * IN) and data interface (alt 0 empty, alt 1 bulk IN + OUT). `hs` picks packet sizes. */
static size_t build_config(uint8_t *b, int hs)
{
	size_t n = 9;
	int lie_type = !strcmp(desc_case, "ep-type");
	int lie_mps0 = !strcmp(desc_case, "mps0");
	int lie_union = !strcmp(desc_case, "union-missing");
	int lie_seg = !strcmp(desc_case, "segsize0");
	unsigned bulk = hs ? HS_BULK : 64;
	uint8_t *d;

	if (rndis_mode)
		return rndis_config(b, hs);
	/* interface 0: communications, NCM */
	d = b + n; n += 9;
	d[0] = 9; d[1] = USB_DT_INTERFACE; d[2] = 0; d[3] = 0; d[4] = 1;
	d[5] = 0x02; d[6] = 0x0d; d[7] = 0x00; d[8] = 0;
	/* CDC header 1.10 */
	d = b + n; n += 5;
	d[0] = 5; d[1] = 0x24; d[2] = 0x00; put16(d + 3, 0x0110);
	/* CDC union: master 0, slave 1 (or a missing 5) */
	d = b + n; n += 5;
	d[0] = 5; d[1] = 0x24; d[2] = 0x06; d[3] = 0; d[4] = lie_union ? 5 : 1;
	/* CDC ethernet: iMACAddress 4, wMaxSegmentSize 1514 (or 0) */
	d = b + n; n += 13;
	memset(d, 0, 13);
	d[0] = 13; d[1] = 0x24; d[2] = 0x0f; d[3] = 4;
	put16(d + 8, lie_seg ? 0 : 1514);
	/* NCM functional: 1.00, SetEthernetPacketFilter */
	d = b + n; n += 6;
	d[0] = 6; d[1] = 0x24; d[2] = 0x1a; put16(d + 3, 0x0100); d[5] = 0x01;
	/* notification endpoint */
	d = b + n; n += 7;
	d[0] = 7; d[1] = USB_DT_ENDPOINT; d[2] = EP_INT_ADDR; d[3] = USB_ENDPOINT_XFER_INT;
	put16(d + 4, NOTIFY_MPS); d[6] = hs ? 4 : 1;
	/* interface 1 alt 0: no endpoints */
	d = b + n; n += 9;
	d[0] = 9; d[1] = USB_DT_INTERFACE; d[2] = 1; d[3] = 0; d[4] = 0;
	d[5] = 0x0a; d[6] = 0x00; d[7] = 0x01; d[8] = 0;
	/* interface 1 alt 1: bulk IN, bulk OUT */
	d = b + n; n += 9;
	d[0] = 9; d[1] = USB_DT_INTERFACE; d[2] = 1; d[3] = 1; d[4] = 2;
	d[5] = 0x0a; d[6] = 0x00; d[7] = 0x01; d[8] = 0;
	d = b + n; n += 7;
	d[0] = 7; d[1] = USB_DT_ENDPOINT; d[2] = EP_IN_ADDR;
	d[3] = lie_type ? USB_ENDPOINT_XFER_INT : USB_ENDPOINT_XFER_BULK;
	put16(d + 4, lie_mps0 ? 0 : (lie_type ? 64 : bulk)); d[6] = lie_type ? 1 : 0;
	d = b + n; n += 7;
	d[0] = 7; d[1] = USB_DT_ENDPOINT; d[2] = EP_OUT_ADDR; d[3] = USB_ENDPOINT_XFER_BULK;
	put16(d + 4, bulk); d[6] = 0;

	b[0] = 9; b[1] = USB_DT_CONFIG; put16(b + 2, n); b[4] = 2; b[5] = 1; b[6] = 0;
	b[7] = 0xc0; b[8] = 50;
	return n;
}

static size_t build_device(uint8_t *d)
{
	memset(d, 0, 18);
	d[0] = 18; d[1] = USB_DT_DEVICE; put16(d + 2, 0x0200);
	d[4] = 0; d[5] = 0; d[6] = 0; d[7] = 64;
	put16(d + 8, 0x1d6b); put16(d + 10, 0x0104); put16(d + 12, 0x0109);
	d[14] = 1; d[15] = 2; d[16] = 3; d[17] = 1;
	return 18;
}

static void ep_desc(uint8_t *d, int addr, int type, unsigned mps, int interval)
{
	d[0] = 7; d[1] = USB_DT_ENDPOINT; d[2] = addr; d[3] = type; put16(d + 4, mps); d[6] = interval;
}

/* ------------------------------------------------------------------ NTB parameters ---- */

/* Fills the GET_NTB_PARAMETERS reply for case `name`; returns its length (-1: unknown). */
static int build_params(const char *name, uint8_t *p)
{
	memset(p, 0, 28);
	put16(p + 0, 28);
	put16(p + 2, 0x0001);		/* NTB-16 only */
	put32(p + 4, MAXNTB);		/* dwNtbInMaxSize */
	put16(p + 8, 4);		/* wNdpInDivisor */
	put16(p + 10, 0);
	put16(p + 12, 4);		/* wNdpInAlignment */
	put32(p + 16, MAXNTB);		/* dwNtbOutMaxSize */
	put16(p + 20, 4);		/* wNdpOutDivisor */
	put16(p + 22, 0);
	put16(p + 24, 4);		/* wNdpOutAlignment */
	put16(p + 26, 0);		/* wNtbOutMaxDatagrams */
	if (!strcmp(name, "normal"))
		return 28;
	if (!strcmp(name, "zero")) {
		memset(p, 0, 28);
		return 28;
	}
	if (!strcmp(name, "short10"))
		return 10;
	if (!strcmp(name, "short0"))
		return 0;
	if (!strcmp(name, "out-max-0")) {
		put32(p + 16, 0);
		return 28;
	}
	if (!strcmp(name, "out-max-tiny")) {
		put32(p + 16, 64);
		return 28;
	}
	if (!strcmp(name, "in-max-tiny")) {
		put32(p + 4, 16);
		return 28;
	}
	if (!strcmp(name, "divisor0")) {
		put16(p + 8, 0);
		put16(p + 20, 0);
		put16(p + 22, 3);
		return 28;
	}
	if (!strcmp(name, "align3")) {
		put16(p + 12, 3);
		put16(p + 24, 3);
		return 28;
	}
	if (!strcmp(name, "remainder-big")) {
		put16(p + 20, 4);
		put16(p + 22, 4000);
		return 28;
	}
	if (!strcmp(name, "dgrams0")) {
		put16(p + 26, 0);
		return 28;
	}
	if (!strcmp(name, "dgrams1")) {
		put16(p + 26, 1);
		return 28;
	}
	if (!strcmp(name, "dgrams65535")) {
		put16(p + 26, 65535);
		return 28;
	}
	return -1;
}

static const char *params_cases[] = {
	"normal", "zero", "short10", "short0", "out-max-0", "out-max-tiny", "in-max-tiny",
	"divisor0", "align3", "remainder-big", "dgrams0", "dgrams1", "dgrams65535", NULL,
};
static const char *desc_cases[] = {
	"normal", "ep-type", "mps0", "union-missing", "mac-bad", "segsize0", NULL,
};

/* ------------------------------------------------------------------ frames and NTBs ---- */

static unsigned frame_counter;

/* A broadcast Ethernet frame of a local experimental EtherType, `len` bytes. */
static void make_frame(uint8_t *f, size_t len, unsigned tag)
{
	static const uint8_t src[6] = {0x02, 0x4c, 0x41, 0x42, 0x09, 0x02};
	memset(f, 0, len);
	memset(f, 0xff, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x88;
	f[13] = 0xb5;
	snprintf((char *)f + 14, len - 14, "usbnetd hostile frame %u", tag);
}

static size_t next_frame_len(void)
{
	return 60 + (frame_counter++ % 200) * 4;
}

struct ntb {
	uint8_t b[MAXNTB];
	size_t len;	/* bytes to send */
	size_t ndp;	/* offset of the (first) NDP */
	size_t dg[64];	/* offsets of the datagrams */
	size_t dglen[64];
	int ndg;
};

static size_t align4(size_t x) { return (x + 3) & ~(size_t)3; }

/* A valid NTB-16 with `n` datagrams of the given lengths: NTH, datagrams, NDP at the end. */
static void ntb16(struct ntb *t, const size_t *lens, int n)
{
	size_t off = 12;
	int i;
	memset(t->b, 0, sizeof t->b);
	t->ndg = n;
	for (i = 0; i < n; i++) {
		off = align4(off);
		t->dg[i] = off;
		t->dglen[i] = lens[i];
		make_frame(t->b + off, lens[i], frame_counter * 1000 + i);
		off += lens[i];
	}
	off = align4(off);
	t->ndp = off;
	memcpy(t->b + off, "NCM0", 4);
	put16(t->b + off + 4, 8 + 4 * (n + 1));
	put16(t->b + off + 6, 0);
	for (i = 0; i < n; i++) {
		put16(t->b + off + 8 + 4 * i, t->dg[i]);
		put16(t->b + off + 10 + 4 * i, t->dglen[i]);
	}
	off += 8 + 4 * (n + 1);
	memcpy(t->b, "NCMH", 4);
	put16(t->b + 4, 12);
	put16(t->b + 6, frame_counter & 0xffff);
	put16(t->b + 8, off);
	put16(t->b + 10, t->ndp);
	t->len = off;
}

static void ntb16_one(struct ntb *t)
{
	size_t l = next_frame_len();
	ntb16(t, &l, 1);
}

/* One transfer on bulk IN. gadgetfs cannot send a ZLP: a length on a packet boundary
 * gets one pad byte (past the block, which the host must ignore). */
static int send_in(const uint8_t *b, size_t len);

/* ------------------------------------------------------------------ the data catalogue ---- */

struct data_case {
	const char *name;
	const char *what;
	/* builds the malformed transfer; sets the frames a strict (min) and a lenient (max)
	 * correct host delivers from it */
	void (*build)(struct ntb *t, int *min, int *max);
};

static void c_nth_sig(struct ntb *t, int *mn, int *mx)
{
	ntb16_one(t);
	memcpy(t->b, "XCMH", 4);
	*mn = 0; *mx = 0;
}
static void c_hdrlen0(struct ntb *t, int *mn, int *mx)
{
	ntb16_one(t);
	put16(t->b + 4, 0);
	*mn = 0; *mx = 1;
}
static void c_hdrlen8(struct ntb *t, int *mn, int *mx)
{
	ntb16_one(t);
	put16(t->b + 4, 8);
	*mn = 0; *mx = 1;
}
static void c_hdrlen16(struct ntb *t, int *mn, int *mx)
{
	ntb16_one(t);
	put16(t->b + 4, 16);
	*mn = 0; *mx = 1;
}
static void c_block0(struct ntb *t, int *mn, int *mx)
{
	/* NCM 1.0 allows wBlockLength 0: the block is the whole transfer */
	ntb16_one(t);
	put16(t->b + 8, 0);
	*mn = 0; *mx = 1;
}
static void c_block_small(struct ntb *t, int *mn, int *mx)
{
	ntb16_one(t);
	put16(t->b + 8, 8);
	*mn = 0; *mx = 0;
}
static void c_block_big(struct ntb *t, int *mn, int *mx)
{
	ntb16_one(t);
	put16(t->b + 8, t->len + 256);
	*mn = 0; *mx = 1;
}
static void c_truncated(struct ntb *t, int *mn, int *mx)
{
	ntb16_one(t);
	t->len = 6;
	*mn = 0; *mx = 0;
}
static void c_ndp_out(struct ntb *t, int *mn, int *mx)
{
	ntb16_one(t);
	put16(t->b + 10, 0xfff0);
	*mn = 0; *mx = 0;
}
static void c_ndp_in_nth(struct ntb *t, int *mn, int *mx)
{
	ntb16_one(t);
	put16(t->b + 10, 4);
	*mn = 0; *mx = 0;
}
static void c_ndp_unaligned(struct ntb *t, int *mn, int *mx)
{
	/* the NDP moved 2 bytes up, wNdpIndex follows it: well-formed but for the alignment */
	ntb16_one(t);
	memmove(t->b + t->ndp + 2, t->b + t->ndp, t->len - t->ndp);
	t->ndp += 2;
	t->len += 2;
	put16(t->b + 8, t->len);
	put16(t->b + 10, t->ndp);
	*mn = 0; *mx = 1;
}
static void c_ndp_sig(struct ntb *t, int *mn, int *mx)
{
	ntb16_one(t);
	memcpy(t->b + t->ndp, "XCM0", 4);
	*mn = 0; *mx = 0;
}
static void c_ndp32_in_16(struct ntb *t, int *mn, int *mx)
{
	ntb16_one(t);
	memcpy(t->b + t->ndp, "ncm0", 4);
	*mn = 0; *mx = 0;
}
static void c_ndp_crc(struct ntb *t, int *mn, int *mx)
{
	ntb16_one(t);
	memcpy(t->b + t->ndp, "NCM1", 4);
	*mn = 0; *mx = 0;
}
static void c_ndp_near_end(struct ntb *t, int *mn, int *mx)
{
	/* an NDP header in the last 8 bytes of the block claiming 65520 bytes */
	ntb16_one(t);
	size_t at = align4(t->len);
	memset(t->b + t->len, 0, at + 8 - t->len);
	memcpy(t->b + at, "NCM0", 4);
	put16(t->b + at + 4, 0xfff0);
	put16(t->b + at + 6, 0);
	t->len = at + 8;
	put16(t->b + 8, t->len);
	put16(t->b + 10, at);
	*mn = 0; *mx = 0;
}
static void c_ndp_len_small(struct ntb *t, int *mn, int *mx)
{
	ntb16_one(t);
	put16(t->b + t->ndp + 4, 8);
	*mn = 0; *mx = 0;
}
static void c_ndp_unterminated(struct ntb *t, int *mn, int *mx)
{
	/* wLength covers the two entries but not the (0, 0) terminator */
	size_t lens[2] = {next_frame_len(), next_frame_len()};
	ntb16(t, lens, 2);
	put16(t->b + t->ndp + 4, 16);
	*mn = 0; *mx = 2;
}
static void c_ndp_empty(struct ntb *t, int *mn, int *mx)
{
	ntb16(t, NULL, 0);
	*mn = 0; *mx = 0;
}
static void c_ndp_self_loop(struct ntb *t, int *mn, int *mx)
{
	ntb16_one(t);
	put16(t->b + t->ndp + 6, t->ndp);
	*mn = 0; *mx = 1;
}
static void c_ndp_loop2(struct ntb *t, int *mn, int *mx)
{
	/* NDP A (datagram 0) -> NDP B (datagram 1) -> NDP A */
	size_t lens[2] = {next_frame_len(), next_frame_len()};
	ntb16(t, lens, 2);
	size_t a = t->ndp, b = align4(t->len);
	put16(t->b + a + 4, 16);	/* A: one entry + terminator */
	put16(t->b + a + 6, b);
	put16(t->b + a + 8, t->dg[0]);
	put16(t->b + a + 10, t->dglen[0]);
	put32(t->b + a + 12, 0);
	memcpy(t->b + b, "NCM0", 4);
	put16(t->b + b + 4, 16);
	put16(t->b + b + 6, a);
	put16(t->b + b + 8, t->dg[1]);
	put16(t->b + b + 10, t->dglen[1]);
	put32(t->b + b + 12, 0);
	t->len = b + 16;
	put16(t->b + 8, t->len);
	*mn = 0; *mx = 2;
}
static void c_ndp_chain_repeat(struct ntb *t, int *mn, int *mx)
{
	/* 200 chained NDPs, every one pointing at the same datagram */
	ntb16_one(t);
	size_t at = t->ndp;
	int i;
	for (i = 0; i < 200; i++) {
		size_t next = i == 199 ? 0 : at + 16;
		memcpy(t->b + at, "NCM0", 4);
		put16(t->b + at + 4, 16);
		put16(t->b + at + 6, next);
		put16(t->b + at + 8, t->dg[0]);
		put16(t->b + at + 10, t->dglen[0]);
		put32(t->b + at + 12, 0);
		at += 16;
	}
	t->len = at;
	put16(t->b + 8, t->len);
	*mn = 0; *mx = 1;
}
static void c_ndp_chain_long(struct ntb *t, int *mn, int *mx)
{
	/* 40 chained NDPs, each with its own datagram: legal, but long */
	size_t lens[40];
	int i;
	for (i = 0; i < 40; i++)
		lens[i] = 60;
	frame_counter++;
	ntb16(t, lens, 40);
	size_t at = t->ndp;
	for (i = 0; i < 40; i++) {
		size_t next = i == 39 ? 0 : at + 16;
		memcpy(t->b + at, "NCM0", 4);
		put16(t->b + at + 4, 16);
		put16(t->b + at + 6, next);
		put16(t->b + at + 8, t->dg[i]);
		put16(t->b + at + 10, t->dglen[i]);
		put32(t->b + at + 12, 0);
		at += 16;
	}
	t->len = at;
	put16(t->b + 8, t->len);
	*mn = 40; *mx = 40;
}
static void c_dg_overflow(struct ntb *t, int *mn, int *mx)
{
	/* a good datagram, then index 0xfff0 + length 0x40: wraps a u16 */
	size_t lens[2] = {next_frame_len(), 60};
	ntb16(t, lens, 2);
	put16(t->b + t->ndp + 12, 0xfff0);
	put16(t->b + t->ndp + 14, 0x40);
	*mn = 1; *mx = 1;
}
static void c_dg_past_block(struct ntb *t, int *mn, int *mx)
{
	size_t lens[2] = {next_frame_len(), 60};
	ntb16(t, lens, 2);
	put16(t->b + t->ndp + 14, t->len);	/* second datagram runs past the block */
	*mn = 1; *mx = 1;
}
static void c_dg_in_nth(struct ntb *t, int *mn, int *mx)
{
	size_t lens[2] = {next_frame_len(), 60};
	ntb16(t, lens, 2);
	put16(t->b + t->ndp + 12, 2);		/* second datagram starts inside the NTH */
	*mn = 1; *mx = 1;
}
static void c_dg_zero_len(struct ntb *t, int *mn, int *mx)
{
	size_t lens[2] = {next_frame_len(), 60};
	ntb16(t, lens, 2);
	put16(t->b + t->ndp + 14, 0);		/* (index, 0) before the terminator */
	*mn = 1; *mx = 1;
}
static void c_dg_runt(struct ntb *t, int *mn, int *mx)
{
	size_t lens[3] = {next_frame_len(), 60, next_frame_len()};
	ntb16(t, lens, 3);
	put16(t->b + t->ndp + 14, 5);		/* the middle one: 5 bytes */
	*mn = 2; *mx = 2;
}
static void c_dg_repeat(struct ntb *t, int *mn, int *mx)
{
	/* one datagram, its pointer repeated 1000 times (a 4 KB NTB) */
	ntb16_one(t);
	size_t at = t->ndp;
	int i;
	put16(t->b + at + 4, 8 + 4 * 1001);
	for (i = 0; i < 1000; i++) {
		put16(t->b + at + 8 + 4 * i, t->dg[0]);
		put16(t->b + at + 10 + 4 * i, t->dglen[0]);
	}
	put32(t->b + at + 8 + 4 * 1000, 0);
	t->len = at + 8 + 4 * 1001;
	put16(t->b + 8, t->len);
	*mn = 1; *mx = 1;
}
static void c_dg_overlap(struct ntb *t, int *mn, int *mx)
{
	/* the second datagram starts inside the first */
	size_t lens[2] = {200, 200};
	frame_counter++;
	ntb16(t, lens, 2);
	put16(t->b + t->ndp + 12, t->dg[0] + 64);
	*mn = 1; *mx = 1;
}
static void c_ntb32(struct ntb *t, int *mn, int *mx)
{
	/* a well-formed NTB-32 although only NTB-16 is offered */
	size_t len = next_frame_len();
	size_t dg = 16, ndp = align4(16 + len);
	memset(t->b, 0, sizeof t->b);
	make_frame(t->b + dg, len, frame_counter);
	memcpy(t->b, "ncmh", 4);
	put16(t->b + 4, 16);
	put16(t->b + 6, 1);
	memcpy(t->b + ndp, "ncm0", 4);
	put16(t->b + ndp + 4, 32);
	put16(t->b + ndp + 6, 0);
	put32(t->b + ndp + 8, 0);
	put32(t->b + ndp + 12, 0);
	put32(t->b + ndp + 16, dg);
	put32(t->b + ndp + 20, len);
	t->len = ndp + 32;
	put32(t->b + 8, t->len);
	put32(t->b + 12, ndp);
	*mn = 0; *mx = 1;
}
static void c_garbage(struct ntb *t, int *mn, int *mx)
{
	unsigned x = 0x12345678;
	size_t i;
	t->len = 1000;
	for (i = 0; i < t->len; i++) {
		x = x * 1103515245 + 12345;
		t->b[i] = x >> 16;
	}
	*mn = 0; *mx = 0;
}

static const struct data_case data_cases[] = {
	{"nth-sig", "NTH signature not NCMH", c_nth_sig},
	{"nth-hdrlen-0", "wHeaderLength 0", c_hdrlen0},
	{"nth-hdrlen-8", "wHeaderLength 8 (too small)", c_hdrlen8},
	{"nth-hdrlen-16", "wHeaderLength 16 in NTB-16", c_hdrlen16},
	{"block-len-0", "wBlockLength 0 (= whole transfer)", c_block0},
	{"block-len-8", "wBlockLength 8 (< NTH)", c_block_small},
	{"block-len-big", "wBlockLength 256 past the transfer", c_block_big},
	{"truncated", "6-byte transfer", c_truncated},
	{"ndp-index-out", "wNdpIndex 0xfff0", c_ndp_out},
	{"ndp-index-nth", "wNdpIndex 4 (inside the NTH)", c_ndp_in_nth},
	{"ndp-unaligned", "wNdpIndex not a multiple of 4", c_ndp_unaligned},
	{"ndp-sig", "NDP signature not NCM0", c_ndp_sig},
	{"ndp32-in-ntb16", "NDP32 signature in an NTB-16", c_ndp32_in_16},
	{"ndp-crc", "NDP in CRC mode (NCM1), never enabled", c_ndp_crc},
	{"ndp-near-end", "NDP in the last 8 bytes, wLength 0xfff0", c_ndp_near_end},
	{"ndp-len-8", "NDP wLength 8 (< 16)", c_ndp_len_small},
	{"ndp-unterminated", "NDP entries without (0,0) terminator", c_ndp_unterminated},
	{"ndp-empty", "NDP with no datagram", c_ndp_empty},
	{"ndp-self-loop", "wNextNdpIndex pointing at itself", c_ndp_self_loop},
	{"ndp-loop-2", "two NDPs pointing at each other", c_ndp_loop2},
	{"ndp-chain-repeat", "200 chained NDPs, same datagram", c_ndp_chain_repeat},
	{"ndp-chain-40", "40 chained NDPs, one datagram each", c_ndp_chain_long},
	{"dg-overflow", "datagram index 0xfff0 + length 0x40", c_dg_overflow},
	{"dg-past-block", "datagram running past the block", c_dg_past_block},
	{"dg-in-nth", "datagram starting inside the NTH", c_dg_in_nth},
	{"dg-zero-len", "zero-length datagram entry", c_dg_zero_len},
	{"dg-runt", "5-byte datagram between good ones", c_dg_runt},
	{"dg-repeat-1000", "one pointer repeated 1000 times", c_dg_repeat},
	{"dg-overlap", "second datagram inside the first", c_dg_overlap},
	{"ntb32-while-16", "NTB-32 while only NTB-16 is offered", c_ntb32},
	{"garbage", "1000 random bytes", c_garbage},
	{NULL, NULL, NULL},
};

/* ------------------------------------------------------------------ notifications ---- */

static size_t notif(uint8_t *b, int code, unsigned value, unsigned len)
{
	b[0] = 0xa1; b[1] = code; put16(b + 2, value); put16(b + 4, 0); put16(b + 6, len);
	return 8;
}
static size_t speed(uint8_t *b, uint32_t down, uint32_t up)
{
	notif(b, 0x2a, 0, 8);
	put32(b + 8, down);
	put32(b + 12, up);
	return 16;
}

/* A notification case is a list of interrupt transfers. */
struct xfers {
	uint8_t b[64][16];
	size_t len[64];
	int n;
	int repeat;	/* the whole list this many times */
};

static void xf_add(struct xfers *x, const uint8_t *b, size_t len)
{
	memcpy(x->b[x->n], b, len);
	x->len[x->n++] = len;
}

static int build_notify(const char *name, struct xfers *x)
{
	uint8_t b[16];
	memset(x, 0, sizeof *x);
	x->repeat = 1;
	if (!strcmp(name, "flood")) {
		/* 200 x (down, speed, up): 600 notifications as fast as the host polls */
		notif(b, 0x00, 0, 0); xf_add(x, b, 8);
		speed(b, 100000000, 100000000); xf_add(x, b, 16);
		notif(b, 0x00, 1, 0); xf_add(x, b, 8);
		x->repeat = 200;
	} else if (!strcmp(name, "orphan-split")) {
		/* down; the first half of a CONNECTION_SPEED_CHANGE alone; then up */
		notif(b, 0x00, 0, 0); xf_add(x, b, 8);
		notif(b, 0x2a, 0, 8); xf_add(x, b, 8);
	} else if (!strcmp(name, "garbage")) {
		/* short, unknown, wrong request type, huge wLength */
		notif(b, 0x00, 0, 0); xf_add(x, b, 8);
		memset(b, 0xee, 3); xf_add(x, b, 3);
		notif(b, 0x7f, 0, 0); xf_add(x, b, 8);
		notif(b, 0x00, 1, 0); b[0] = 0x21; xf_add(x, b, 8);
		notif(b, 0x2a, 0, 0xffff); xf_add(x, b, 8);
		memset(b, 0x5a, 16); xf_add(x, b, 16);
	} else {
		return -1;
	}
	/* every case ends with the link up, in its own transfer */
	notif(b, 0x00, 1, 0); xf_add(x, b, 8);
	return 0;
}

static const char *notify_cases[] = {"flood", "orphan-split", "garbage", NULL};

/* ------------------------------------------------------------------ endpoint I/O ---- */

/* A write that blocks longer than this is interrupted (the host stopped reading). */
struct watch {
	pthread_t thread;
	volatile int armed;
	struct timespec deadline;
};
static struct watch watches[4];
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_usr1(int sig) { (void)sig; }

/* RNDIS: the ep0 thread runs SCHED_FIFO. The host's SEND_ENCAPSULATED_COMMAND completes in
 * the kernel (gadgetfs takes an OUT data stage by itself), and its GET_ENCAPSULATED_RESPONSE
 * follows at once; gadgetfs keeps only the newest unread SETUP, so unless the ep0 reader
 * runs before the host's thread does, the command is lost (measured: rndis_host's INITIALIZE
 * was, every time). The other threads, spawned from ep0, go back to normal scheduling. */
static void ep0_realtime(void)
{
	struct sched_param sp = {.sched_priority = 10};
	int e = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
	if (e)
		say("SCHED_FIFO for ep0: %s (commands may be lost)", strerror(e));
}

static void normal_priority(void)
{
	struct sched_param sp = {.sched_priority = 0};
	pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
}

static __thread struct watch *mine;

static struct watch *watch_slot(void)
{
	int i;
	if (mine)
		return mine;
	pthread_mutex_lock(&watch_lock);
	for (i = 0; i < 4; i++) {
		if (!watches[i].thread) {
			watches[i].thread = pthread_self();
			mine = &watches[i];
			break;
		}
	}
	pthread_mutex_unlock(&watch_lock);
	if (!mine)
		die("too many writer threads");
	return mine;
}

/* Gives the calling thread's slot back (short-lived writer threads). */
static void watch_release(void)
{
	pthread_mutex_lock(&watch_lock);
	if (mine) {
		mine->armed = 0;
		mine->thread = 0;
		mine = NULL;
	}
	pthread_mutex_unlock(&watch_lock);
}

static ssize_t timed_write(int fd, const void *b, size_t len, int ms)
{
	struct watch *w = watch_slot();
	ssize_t r;
	clock_gettime(CLOCK_MONOTONIC, &w->deadline);
	w->deadline.tv_sec += ms / 1000;
	w->deadline.tv_nsec += (ms % 1000) * 1000000L;
	if (w->deadline.tv_nsec >= 1000000000L) {
		w->deadline.tv_sec++;
		w->deadline.tv_nsec -= 1000000000L;
	}
	w->armed = 1;
	r = write(fd, b, len);
	w->armed = 0;
	return r;
}

static void *watchdog(void *arg)
{
	(void)arg;
	for (;;) {
		struct timespec now;
		int i;
		usleep(50000);
		clock_gettime(CLOCK_MONOTONIC, &now);
		for (i = 0; i < 4; i++) {
			struct watch *w = &watches[i];
			if (w->armed && (now.tv_sec > w->deadline.tv_sec ||
					 (now.tv_sec == w->deadline.tv_sec && now.tv_nsec > w->deadline.tv_nsec)))
				pthread_kill(w->thread, SIGUSR1);
		}
	}
	return NULL;
}

static int send_in(const uint8_t *b, size_t len)
{
	uint8_t buf[MAXNTB + 1];
	ssize_t r;
	if (len > MAXNTB)
		len = MAXNTB;
	memcpy(buf, b, len);
	if (len % HS_BULK == 0)
		buf[len++] = 0;
	r = timed_write(ep_in, buf, len, 3000);
	if (r != (ssize_t)len) {
		atomic_fetch_add(&in_errors, 1);
		say("bulk IN write of %zu bytes: %s", len, r < 0 ? strerror(errno) : "short");
		return -1;
	}
	atomic_fetch_add(&in_transfers, 1);
	return 0;
}

static int send_int(const uint8_t *b, size_t len)
{
	ssize_t r = timed_write(ep_int, b, len, 3000);
	if (r != (ssize_t)len) {
		say("interrupt IN write of %zu bytes: %s", len, r < 0 ? strerror(errno) : "short");
		return -1;
	}
	return 0;
}

static int send_connect(void)
{
	uint8_t b[16];
	notif(b, 0x00, 1, 0);
	if (send_int(b, 8))
		return -1;
	speed(b, 100000000, 100000000);
	return send_int(b, 16);
}

static int send_valid(void)
{
	static struct ntb t;
	if (rndis_mode)
		return rndis_send_valid();
	ntb16_one(&t);
	return send_in(t.b, t.len);
}

/* ------------------------------------------------------------------ bulk OUT checker ---- */

static uint32_t adv_out_max;

/* Checks one OUT transfer as an NTB-16 and counts it. */
static void check_out(const uint8_t *b, size_t n)
{
	unsigned block, ndp, frames = 0;
	int guard = 0;
	atomic_fetch_add(&out_transfers, 1);
	atomic_fetch_add(&out_bytes, n);
	if (adv_out_max && n > adv_out_max)
		atomic_fetch_add(&out_oversize, 1);
	if (n < 12 || memcmp(b, "NCMH", 4) || get16(b + 4) != 12)
		goto bad;
	block = get16(b + 8);
	if (block == 0)
		block = n;
	if (block > n || block < 12)
		goto bad;
	ndp = get16(b + 10);
	while (ndp) {
		unsigned len, i;
		if (ndp < 12 || ndp % 4 || ndp + 16 > block || memcmp(b + ndp, "NCM0", 4) || ++guard > 8)
			goto bad;
		len = get16(b + ndp + 4);
		if (len < 16 || ndp + len > block)
			goto bad;
		for (i = 8; i + 4 <= len; i += 4) {
			unsigned di = get16(b + ndp + i), dl = get16(b + ndp + i + 2);
			if (di == 0 || dl == 0)
				break;
			if (di < 12 || di + dl > block || dl < 14)
				goto bad;
			frames++;
		}
		ndp = get16(b + ndp + 6);
	}
	if (!frames)
		goto bad;
	atomic_fetch_add(&out_good, 1);
	atomic_fetch_add(&out_frames, frames);
	return;
bad:
	atomic_fetch_add(&out_bad, 1);
}

static unsigned long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (unsigned long)t.tv_sec * 1000 + (unsigned long)t.tv_nsec / 1000000;
}

static void *out_reader(void *arg)
{
	static uint8_t buf[65536];
	(void)arg;
	normal_priority();
	for (;;) {
		int fd = ep_out;
		ssize_t r;
		/* no read queued: gadgetfs has no request on the endpoint, the host's OUT waits */
		while (now_ms() < atomic_load(&out_paused_until))
			usleep(10000);
		if (fd < 0) {
			usleep(20000);
			continue;
		}
		r = read(fd, buf, sizeof buf);
		if (r < 0) {
			usleep(20000);
			continue;
		}
		if (rndis_mode)
			rndis_check_out(buf, r);
		else
			check_out(buf, r);
	}
	return NULL;
}

static void *status_writer(void *arg)
{
	char tmp[512];
	(void)arg;
	snprintf(tmp, sizeof tmp, "%s.tmp", status_path);
	for (;;) {
		FILE *f = fopen(tmp, "w");
		if (f) {
			fprintf(f,
				"out_transfers=%lu out_good=%lu out_bad=%lu out_frames=%lu out_bytes=%lu "
				"out_oversize=%lu in_transfers=%lu in_errors=%lu inits=%lu queries=%lu sets=%lu "
				"halts=%lu ka_cmplt=%lu notifications=%lu rq_dropped=%lu\n",
				atomic_load(&out_transfers), atomic_load(&out_good), atomic_load(&out_bad),
				atomic_load(&out_frames), atomic_load(&out_bytes), atomic_load(&out_oversize),
				atomic_load(&in_transfers), atomic_load(&in_errors), atomic_load(&inits),
				atomic_load(&queries), atomic_load(&sets), atomic_load(&halts),
				atomic_load(&ka_cmplt), atomic_load(&notifications), atomic_load(&rq_dropped));
			fclose(f);
			rename(tmp, status_path);
		}
		usleep(200000);
	}
	return NULL;
}

/* ------------------------------------------------------------------ commands ---- */

static void run_data_case(const char *name)
{
	static struct ntb t;
	const struct data_case *c;
	int mn = 0, mx = 0, err = 0;
	for (c = data_cases; c->name; c++)
		if (!strcmp(c->name, name))
			break;
	if (!c->name) {
		say("done case %s unknown", name);
		return;
	}
	err |= send_valid();
	c->build(&t, &mn, &mx);
	err |= send_in(t.b, t.len);
	usleep(50000);
	err |= send_valid();
	say("done case %s expect_min=%d expect_max=%d bytes=%zu io=%s", name, mn + 2, mx + 2, t.len,
	    err ? "error" : "ok");
}

static void run_notify_case(const char *name)
{
	struct xfers x;
	int r, i, err = 0, sent = 0;
	if (build_notify(name, &x)) {
		say("done notify %s unknown", name);
		return;
	}
	for (r = 0; r < x.repeat && !err; r++)
		for (i = 0; i < x.n && !err; i++) {
			/* the up that ends the case only once, after the last round */
			if (i == x.n - 1 && r != x.repeat - 1)
				continue;
			err |= send_int(x.b[i], x.len[i]);
			sent++;
		}
	err |= send_valid();
	say("done notify %s transfers=%d io=%s", name, sent, err ? "error" : "ok");
}

static void run_stall(void)
{
	char c;
	int err = 0;
	err |= send_valid();
	/* gadgetfs: reading an IN endpoint halts it */
	if (read(ep_in, &c, 1) >= 0 || errno != EBADMSG) {
		say("halting bulk IN: %s", strerror(errno));
		err = 1;
	}
	usleep(200000);
	err |= send_valid();
	say("done stall io=%s", err ? "error" : "ok");
}

static void run_int_stall(void)
{
	char c;
	int err = 0;
	/* gadgetfs: reading an IN endpoint halts it */
	if (read(ep_int, &c, 1) >= 0 || errno != EBADMSG) {
		say("halting interrupt IN: %s", strerror(errno));
		err = 1;
	}
	usleep(200000);
	/* times out (3 s) unless the host cleared the halt and polls again */
	err |= send_connect();
	err |= send_valid();
	say("done int-stall io=%s", err ? "error" : "ok");
}

static void *commands(void *arg)
{
	FILE *f;
	char line[256];
	int fd;
	(void)arg;
	normal_priority();
	if (!ctl_path)
		return NULL;
	fd = open(ctl_path, O_RDWR);
	if (fd < 0)
		die("open %s: %s", ctl_path, strerror(errno));
	f = fdopen(fd, "r");
	while (fgets(line, sizeof line, f)) {
		char *arg2;
		line[strcspn(line, "\r\n")] = 0;
		arg2 = strchr(line, ' ');
		if (arg2)
			*arg2++ = 0;
		if (!strcmp(line, "case") && arg2) {
			if (rndis_mode)
				rndis_data_case(arg2);
			else
				run_data_case(arg2);
		} else if (!strcmp(line, "notify") && arg2) {
			if (rndis_mode)
				rndis_status_case(arg2);
			else
				run_notify_case(arg2);
		} else if (!strcmp(line, "stall")) {
			run_stall();
		} else if (!strcmp(line, "int-stall") && !rndis_mode) {
			run_int_stall();
		} else if (!strcmp(line, "pause-out") && arg2) {
			/* the device takes no data for SECS seconds (a wedged firmware) */
			int secs = atoi(arg2);
			atomic_store(&out_paused_until, now_ms() + 1000ul * (unsigned long)secs);
			sleep((unsigned)secs);
			say("done pause-out %d", secs);
		} else if (!strcmp(line, "valid")) {
			int n = arg2 ? atoi(arg2) : 1, i, err = 0;
			for (i = 0; i < n && !err; i++)
				err |= send_valid();
			say("done valid %d io=%s", n, err ? "error" : "ok");
		} else if (!strcmp(line, "connect") && rndis_mode) {
			rndis_connect();
		} else if (!strcmp(line, "connect")) {
			int err = send_connect();
			say("done connect io=%s", err ? "error" : "ok");
		} else if (!strcmp(line, "quit")) {
			say("quit");
			close(ep0_fd);
			exit(0);
		} else if (line[0]) {
			say("done %s unknown", line);
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------ ep0 ---- */

static int ep_file(const char *name, int addr, int type, unsigned fs_mps, unsigned hs_mps, int fsi,
		   int hsi)
{
	char path[256];
	uint8_t b[4 + 14];
	int fd;
	snprintf(path, sizeof path, "%s/%s", gadget_dir, name);
	fd = open(path, O_RDWR);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	put32(b, 1);
	ep_desc(b + 4, addr, type, fs_mps, fsi);
	ep_desc(b + 11, addr, type, hs_mps, hsi);
	if (write(fd, b, sizeof b) != (ssize_t)sizeof b)
		die("configure %s: %s", path, strerror(errno));
	return fd;
}

static void enable_endpoints(void)
{
	pthread_t t;
	pthread_mutex_lock(&ep_lock);
	if (ep_in < 0) {
		ep_in = ep_file("ep1in-bulk", EP_IN_ADDR, USB_ENDPOINT_XFER_BULK, 64, HS_BULK, 0, 0);
		ep_out = ep_file("ep2out-bulk", EP_OUT_ADDR, USB_ENDPOINT_XFER_BULK, 64, HS_BULK, 0, 0);
		ep_int = ep_file("ep5in-int", EP_INT_ADDR, USB_ENDPOINT_XFER_INT,
				 rndis_mode ? RNDIS_NOTIFY_MPS : NOTIFY_MPS,
				 rndis_mode ? RNDIS_NOTIFY_MPS : NOTIFY_MPS, 1, 4);
		say("endpoints enabled");
	}
	if (!started_threads) {
		started_threads = 1;
		pthread_create(&t, NULL, out_reader, NULL);
		pthread_create(&t, NULL, commands, NULL);
		if (rndis_mode)
			pthread_create(&t, NULL, announcer, NULL);
	}
	pthread_mutex_unlock(&ep_lock);
}

static void disable_endpoints(void)
{
	pthread_mutex_lock(&ep_lock);
	if (ep_in >= 0) {
		int a = ep_in, b = ep_out, c = ep_int;
		ep_in = ep_out = ep_int = -1;
		close(a);
		close(b);
		close(c);
		say("endpoints disabled");
	}
	pthread_mutex_unlock(&ep_lock);
}

static void *connect_notifier(void *arg)
{
	(void)arg;
	normal_priority();
	send_connect();
	/* one of these per SET_INTERFACE: a slot kept per thread ran out after a few */
	watch_release();
	return NULL;
}

static void ack(void)
{
	if (read(ep0_fd, NULL, 0) < 0)
		say("ack: %s", strerror(errno));
}

static void stall(const struct usb_ctrlrequest *s)
{
	char c;
	if (s->bRequestType & USB_DIR_IN) {
		if (read(ep0_fd, &c, 0) >= 0)
			say("stall did not stall");
	} else {
		if (write(ep0_fd, &c, 0) >= 0)
			say("stall did not stall");
	}
}

static void reply(const void *b, size_t len)
{
	if (write(ep0_fd, b, len) < 0)
		say("ep0 reply of %zu bytes: %s", len, strerror(errno));
}

static void handle_setup(const struct usb_ctrlrequest *s)
{
	unsigned value = s->wValue, index = s->wIndex, length = s->wLength;
	uint8_t buf[256];
	int type = s->bRequestType;

	/* (RNDIS commands are traced after their data stage is read: see rndis_setup) */
	if (getenv("HOSTILE_TRACE") && *getenv("HOSTILE_TRACE") && !(rndis_mode && type == 0x21))
		say("setup %02x.%02x v%04x i%04x l%u", type, s->bRequest, value, index, length);
	if (rndis_mode && rndis_setup(s))
		return;
	if (type == USB_DIR_IN && s->bRequest == USB_REQ_GET_DESCRIPTOR && (value >> 8) == USB_DT_STRING) {
		int idx = value & 0xff;
		const char *str = string_of(idx);
		size_t n, i;
		if (idx == 0) {
			buf[0] = 4; buf[1] = USB_DT_STRING; put16(buf + 2, 0x0409);
			reply(buf, length < 4 ? length : 4);
			return;
		}
		if (!str) {
			stall(s);
			return;
		}
		n = strlen(str);
		buf[0] = 2 + 2 * n;
		buf[1] = USB_DT_STRING;
		for (i = 0; i < n; i++)
			put16(buf + 2 + 2 * i, (uint8_t)str[i]);
		reply(buf, length < buf[0] ? length : buf[0]);
		return;
	}
	if (type == 0 && s->bRequest == USB_REQ_SET_CONFIGURATION) {
		if ((value & 0xff) == 1)
			enable_endpoints();
		else
			disable_endpoints();
		ack();
		say("SET_CONFIGURATION %u", value & 0xff);
		return;
	}
	if (type == USB_RECIP_INTERFACE && s->bRequest == USB_REQ_SET_INTERFACE) {
		ack();
		say("SET_INTERFACE %u alt %u", index, value);
		if (index == 1 && value == 1 && ep_int >= 0) {
			pthread_t t;
			pthread_create(&t, NULL, connect_notifier, NULL);
			pthread_detach(t);
		}
		return;
	}
	if (type == (USB_DIR_IN | USB_TYPE_CLASS | USB_RECIP_INTERFACE)) {
		switch (s->bRequest) {
		case 0x80: { /* GET_NTB_PARAMETERS */
			int n = build_params(params_case, buf);
			if (n > (int)length)
				n = length;
			reply(buf, n);
			say("GET_NTB_PARAMETERS: %d bytes (%s)", n, params_case);
			return;
		}
		case 0x83: /* GET_NTB_FORMAT */
			put16(buf, 0);
			reply(buf, length < 2 ? length : 2);
			return;
		case 0x85: /* GET_NTB_INPUT_SIZE */
			put32(buf, MAXNTB);
			reply(buf, length < 4 ? length : 4);
			return;
		case 0x87: /* GET_MAX_DATAGRAM_SIZE */
			put16(buf, 1514);
			reply(buf, length < 2 ? length : 2);
			return;
		}
		stall(s);
		return;
	}
	if (type == (USB_DIR_OUT | USB_TYPE_CLASS | USB_RECIP_INTERFACE)) {
		switch (s->bRequest) {
		case 0x86: /* SET_NTB_INPUT_SIZE */
		case 0x88: /* SET_MAX_DATAGRAM_SIZE */
		case 0x84: /* SET_NTB_FORMAT */
		case 0x43: /* SET_ETHERNET_PACKET_FILTER */
		case 0x89: /* SET_CRC_MODE */
			if (length) {
				ssize_t r = read(ep0_fd, buf, length < sizeof buf ? length : sizeof buf);
				say("class OUT 0x%02x value %u: %zd bytes", s->bRequest, value, r);
			} else {
				ack();
				say("class OUT 0x%02x value %u", s->bRequest, value);
			}
			return;
		}
	}
	say("stalling request %02x.%02x v%04x i%04x l%u", type, s->bRequest, value, index, length);
	if (!(type & USB_DIR_IN) && length) {
		/* gadgetfs cannot stall an OUT with data: take it */
		if (read(ep0_fd, buf, length < sizeof buf ? length : sizeof buf) < 0)
			say("ep0 read: %s", strerror(errno));
		return;
	}
	stall(s);
}

static void ep0_loop(void)
{
	struct usb_gadgetfs_event ev[5];
	for (;;) {
		ssize_t r = read(ep0_fd, ev, sizeof ev);
		int i, n;
		if (r < 0) {
			if (errno == EINTR || errno == EIDRM || errno == EAGAIN)
				continue;
			if (errno == EL2HLT) {	/* a request aborted by the next SETUP */
				say("ep0: a control request was overtaken by the next one");
				continue;
			}
			die("ep0 read: %s", strerror(errno));
		}
		n = r / sizeof ev[0];
		for (i = 0; i < n; i++) {
			switch (ev[i].type) {
			case GADGETFS_CONNECT:
				say("connected, speed %d", ev[i].u.speed);
				break;
			case GADGETFS_DISCONNECT:
				say("disconnected");
				disable_endpoints();
				break;
			case GADGETFS_SETUP:
				handle_setup(&ev[i].u.setup);
				break;
			case GADGETFS_SUSPEND:
			case GADGETFS_NOP:
				break;
			}
		}
	}
}

static void start_device(void)
{
	uint8_t buf[4 + 3 * 256];
	size_t n = 4, fs, hs;
	char path[256];
	pthread_t t;
	struct sigaction sa;
	uint8_t p[28];

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;	/* no SA_RESTART: a watched write returns EINTR */
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (build_params(params_case, p) < 0)
		die("unknown --params %s (hostile --list)", params_case);
	adv_out_max = build_params(params_case, p) >= 20 ? get32(p + 16) : 0;
	if (rndis_mode)	/* what the INITIALIZE reply advertises, when it is a size */
		adv_out_max = strncmp(reply_case, "init-xfer", 9) ? RNDIS_MAX_XFER : 0;

	put32(buf, 0);
	fs = build_config(buf + n, 0);
	n += fs;
	hs = build_config(buf + n, 1);
	n += hs;
	n += build_device(buf + n);

	snprintf(path, sizeof path, "%s/dummy_udc", gadget_dir);
	ep0_fd = open(path, O_RDWR);
	if (ep0_fd < 0)
		die("open %s: %s (is gadgetfs mounted on %s and the UDC free?)", path, strerror(errno),
		    gadget_dir);
	if (write(ep0_fd, buf, n) != (ssize_t)n)
		die("writing descriptors to %s: %s", path, strerror(errno));
	if (rndis_mode)
		say("device up: RNDIS, reply %s", reply_case);
	else
		say("device up: params %s, descriptors %s", params_case, desc_case);
	pthread_create(&t, NULL, watchdog, NULL);
	pthread_create(&t, NULL, status_writer, NULL);
	if (rndis_mode)
		ep0_realtime();
	ep0_loop();
}

/* ------------------------------------------------------------------ seeds ---- */

static void write_file(const char *dir, const char *sub, const char *name, const uint8_t *prefix,
		       size_t plen, const uint8_t *b, size_t len)
{
	char path[512];
	FILE *f;
	snprintf(path, sizeof path, "%s/%s", dir, sub);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/%s/hostile-%s", dir, sub, name);
	f = fopen(path, "wb");
	if (!f)
		die("write %s: %s", path, strerror(errno));
	if (plen)
		fwrite(prefix, 1, plen, f);
	fwrite(b, 1, len, f);
	fclose(f);
}

static void dump_seeds(const char *dir)
{
	static struct ntb t;
	const struct data_case *c;
	const char **p;
	uint8_t mode = 0x80;	/* fuzz/ntb: even = decode; 0x80: 8 NDPs, 1024 datagrams, 1518 B */
	int mn, mx, i, n = 0;

	mkdir(dir, 0755);
	for (c = data_cases; c->name; c++) {
		c->build(&t, &mn, &mx);
		write_file(dir, "ntb", c->name, &mode, 1, t.b, t.len);
		n++;
	}
	for (p = params_cases; *p; p++) {
		uint8_t b[28];
		int len = build_params(*p, b);
		write_file(dir, "ntb_params", *p, NULL, 0, b, len);
		n++;
	}
	for (p = notify_cases; *p; p++) {
		/* fuzz/notify: each transfer is a length byte, then the bytes */
		static uint8_t out[64 * 17];
		struct xfers x;
		size_t o = 0;
		build_notify(*p, &x);
		for (i = 0; i < x.n; i++) {
			out[o++] = x.len[i];
			memcpy(out + o, x.b[i], x.len[i]);
			o += x.len[i];
		}
		write_file(dir, "notify", *p, NULL, 0, out, o);
		n++;
	}
	for (p = desc_cases; *p; p++) {
		/* fuzz/descriptors: device descriptor, then the high-speed configuration */
		static uint8_t out[18 + 256];
		const char *saved = desc_case;
		size_t o;
		desc_case = *p;
		o = build_device(out);
		o += build_config(out + o, 1);
		desc_case = saved;
		write_file(dir, "descriptors", *p, NULL, 0, out, o);
		n++;
	}
	rndis_dump_seeds(dir, &n);
	printf("hostile: %d seeds in %s/{ntb,ntb_params,notify,descriptors,rndis}\n", n, dir);
}

static void list_cases(void)
{
	const struct data_case *c;
	const char **p;
	if (rndis_mode) {
		rndis_list();
		return;
	}
	for (c = data_cases; c->name; c++)
		printf("case %s\t%s\n", c->name, c->what);
	for (p = notify_cases; *p; p++)
		printf("notify %s\n", *p);
	for (p = params_cases; *p; p++)
		printf("params %s\n", *p);
	for (p = desc_cases; *p; p++)
		printf("desc %s\n", *p);
}

static int known(const char **list, const char *name)
{
	for (; *list; list++)
		if (!strcmp(*list, name))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	int i;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--list")) {
			list_cases();
			return 0;
		} else if (!strcmp(a, "--dump-seeds") && v) {
			dump_seeds(v);
			return 0;
		} else if (!strcmp(a, "--params") && v) {
			params_case = v, i++;
		} else if (!strcmp(a, "--class") && v) {
			if (strcmp(v, "ncm") && strcmp(v, "rndis"))
				die("unknown --class %s (ncm or rndis)", v);
			rndis_mode = !strcmp(v, "rndis"), i++;
		} else if (!strcmp(a, "--reply") && v) {
			reply_case = v, i++;
		} else if (!strcmp(a, "--desc") && v) {
			desc_case = v, i++;
		} else if (!strcmp(a, "--ctl") && v) {
			ctl_path = v, i++;
		} else if (!strcmp(a, "--status") && v) {
			status_path = v, i++;
		} else if (!strcmp(a, "--gadget") && v) {
			gadget_dir = v, i++;
		} else {
			die("usage: hostile [--class ncm|rndis] [--params NAME] [--desc NAME] "
			    "[--reply NAME] [--ctl FIFO] [--status FILE] [--gadget DIR] | "
			    "[--class rndis] --list | --dump-seeds DIR");
		}
	}
	if (!known(params_cases, params_case))
		die("unknown --params %s (hostile --list)", params_case);
	if (!known(desc_cases, desc_case))
		die("unknown --desc %s (hostile --list)", desc_case);
	if (!rndis_reply_known(reply_case))
		die("unknown --reply %s (hostile --class rndis --list)", reply_case);
	start_device();
	return 0;
}

#include "rndis.c"
