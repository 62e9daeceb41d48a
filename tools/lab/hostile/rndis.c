/*
 * hostile --class rndis: the RNDIS personality of the hostile device.
 *
 * Included at the end of hostile.c (one static binary, one gcc call in tools/lab/lab),
 * after the gadgetfs plumbing it shares; hostile.c declares the hooks it calls: descriptors go through build_config()/build_device(), the
 * endpoints, the watchdog-timed writes (send_in, send_int), the FIFO commands and the
 * status file are the NCM personality's.
 *
 * It enumerates as the Linux RNDIS gadget does (control interface 02/02/FF with CDC
 * header, call management, ACM and union descriptors and an interrupt IN endpoint; data
 * interface 0A/00/00 with bulk IN and OUT in alt 0), so both usbnetd and rndis_host bind.
 *
 * Control channel: SEND_ENCAPSULATED_COMMAND is read and answered at once, on the ep0
 * thread (gadgetfs keeps only the newest unread SETUP, and hosts send the command and the
 * GET_ENCAPSULATED_RESPONSE back to back); the reply goes into a queue and a separate
 * thread announces it with an 8-byte RESPONSE_AVAILABLE on interrupt IN (a write there
 * blocks until the host polls). GET_ENCAPSULATED_RESPONSE takes the oldest queued
 * message, or stalls when there is none (as f_rndis does). INITIALIZE and HALT empty the
 * queue, as a device that resets its state would.
 *
 * Bring-up lies (--reply NAME) change the INITIALIZE or QUERY replies; data cases (valid
 * PACKET_MSG transfer, malformed transfer, valid transfer) and status cases on the
 * interrupt/control channel are run from the FIFO like the NCM ones.
 */

#define RNDIS_PACKET 0x00000001u
#define RNDIS_INITIALIZE 0x00000002u
#define RNDIS_HALT 0x00000003u
#define RNDIS_QUERY 0x00000004u
#define RNDIS_SET 0x00000005u
#define RNDIS_RESET 0x00000006u
#define RNDIS_INDICATE 0x00000007u
#define RNDIS_KEEPALIVE 0x00000008u
#define RNDIS_CMPLT 0x80000000u

#define RNDIS_SUCCESS 0x00000000u
#define RNDIS_FAILURE 0xc0000001u
#define RNDIS_NOT_SUPPORTED 0xc00000bbu
#define RNDIS_MEDIA_CONNECT 0x4001000bu

#define OID_GEN_MAXIMUM_FRAME_SIZE 0x00010106u
#define OID_GEN_CURRENT_PACKET_FILTER 0x0001010eu
#define OID_GEN_MEDIA_CONNECT_STATUS 0x00010114u
#define OID_802_3_PERMANENT_ADDRESS 0x01010101u

#define RNDIS_HDR 44		/* PACKET_MSG header */

/* ------------------------------------------------------------------ descriptors ---- */

/* As the Linux RNDIS gadget: IAD, control interface with CDC header, call management, ACM,
 * union and interrupt IN; data interface with bulk IN + OUT in alt 0. */
static size_t rndis_config(uint8_t *b, int hs)
{
	size_t n = 9;
	unsigned bulk = hs ? HS_BULK : 64;
	uint8_t *d;

	d = b + n; n += 8;	/* IAD: interfaces 0-1, as f_rndis writes it */
	d[0] = 8; d[1] = 0x0b; d[2] = 0; d[3] = 2; d[4] = 0x02; d[5] = 0x06; d[6] = 0; d[7] = 0;
	d = b + n; n += 9;
	d[0] = 9; d[1] = USB_DT_INTERFACE; d[2] = 0; d[3] = 0; d[4] = 1;
	d[5] = 0x02; d[6] = 0x02; d[7] = 0xff; d[8] = 0;
	d = b + n; n += 5;	/* CDC header 1.10 */
	d[0] = 5; d[1] = 0x24; d[2] = 0x00; put16(d + 3, 0x0110);
	d = b + n; n += 5;	/* call management: data interface 1 */
	d[0] = 5; d[1] = 0x24; d[2] = 0x01; d[3] = 0; d[4] = 1;
	d = b + n; n += 4;	/* ACM: no capabilities */
	d[0] = 4; d[1] = 0x24; d[2] = 0x02; d[3] = 0;
	d = b + n; n += 5;	/* union: master 0, slave 1 */
	d[0] = 5; d[1] = 0x24; d[2] = 0x06; d[3] = 0; d[4] = 1;
	d = b + n; n += 7;
	ep_desc(d, EP_INT_ADDR, USB_ENDPOINT_XFER_INT, RNDIS_NOTIFY_MPS, hs ? 4 : 1);
	d = b + n; n += 9;
	d[0] = 9; d[1] = USB_DT_INTERFACE; d[2] = 1; d[3] = 0; d[4] = 2;
	d[5] = 0x0a; d[6] = 0x00; d[7] = 0x00; d[8] = 0;
	d = b + n; n += 7;
	ep_desc(d, EP_IN_ADDR, USB_ENDPOINT_XFER_BULK, bulk, 0);
	d = b + n; n += 7;
	ep_desc(d, EP_OUT_ADDR, USB_ENDPOINT_XFER_BULK, bulk, 0);

	b[0] = 9; b[1] = USB_DT_CONFIG; put16(b + 2, n); b[4] = 2; b[5] = 1; b[6] = 0;
	b[7] = 0xc0; b[8] = 50;
	return n;
}

/* ------------------------------------------------------------------ bring-up replies ---- */

static const char *reply_cases[] = {
	"normal",
	/* INITIALIZE_CMPLT */
	"init-len-long", "init-short", "init-type", "init-id", "init-status",
	"init-xfer-0", "init-xfer-tiny", "init-xfer-huge", "init-pkts-0", "init-pkts-huge",
	/* QUERY_CMPLT of OID_802_3_PERMANENT_ADDRESS, or of OID_GEN_MAXIMUM_FRAME_SIZE */
	"mac-offset-wrap", "mac-len-wrap", "mac-past-msg", "mac-5", "frame-0", "frame-65535",
	/* KEEPALIVE and INDICATE_STATUS before every reply; no reply at all */
	"chatter", "silent",
	NULL,
};

static int rndis_reply_known(const char *name)
{
	const char **p;
	for (p = reply_cases; *p; p++)
		if (!strcmp(*p, name))
			return 1;
	return 0;
}

static int is_reply(const char *name) { return !strcmp(reply_case, name); }

/* A completion header: type, length, request id, status. */
static void cmplt(uint8_t *m, uint32_t type, uint32_t len, uint32_t id, uint32_t st)
{
	put32(m, type);
	put32(m + 4, len);
	put32(m + 8, id);
	put32(m + 12, st);
}

/* INITIALIZE_CMPLT for request `id` under the current --reply; returns the bytes sent. */
static size_t init_cmplt(uint8_t *m, uint32_t id)
{
	memset(m, 0, 52);
	cmplt(m, RNDIS_INITIALIZE | RNDIS_CMPLT, 52, id, RNDIS_SUCCESS);
	put32(m + 16, 1);		/* MajorVersion */
	put32(m + 20, 0);		/* MinorVersion */
	put32(m + 24, 1);		/* DeviceFlags: connectionless */
	put32(m + 28, 0);		/* Medium: 802.3 */
	put32(m + 32, 1);		/* MaxPacketsPerTransfer */
	put32(m + 36, RNDIS_MAX_XFER);	/* MaxTransferSize */
	put32(m + 40, 0);		/* PacketAlignmentFactor */
	if (is_reply("init-len-long"))
		put32(m + 4, 200);	/* 52 bytes sent */
	if (is_reply("init-short")) {
		put32(m + 4, 24);
		return 24;
	}
	if (is_reply("init-type"))
		put32(m, RNDIS_QUERY | RNDIS_CMPLT);
	if (is_reply("init-id"))
		put32(m + 8, id + 7);
	if (is_reply("init-status"))
		put32(m + 12, RNDIS_FAILURE);
	if (is_reply("init-xfer-0"))
		put32(m + 36, 0);
	if (is_reply("init-xfer-tiny"))
		put32(m + 36, 64);
	if (is_reply("init-xfer-huge"))
		put32(m + 36, 0xffffffffu);
	if (is_reply("init-pkts-0"))
		put32(m + 32, 0);
	if (is_reply("init-pkts-huge"))
		put32(m + 32, 0xffffffffu);
	return 52;
}

static const uint8_t rndis_mac[6] = {0x02, 0x4c, 0x41, 0x42, 0x09, 0x07};

/* QUERY_CMPLT for `oid`; returns the bytes sent. */
static size_t query_cmplt(uint8_t *m, uint32_t id, uint32_t oid)
{
	uint8_t info[8];
	size_t ilen = 0;
	uint32_t st = RNDIS_SUCCESS;
	switch (oid) {
	case OID_802_3_PERMANENT_ADDRESS:
		memcpy(info, rndis_mac, 6);
		ilen = is_reply("mac-5") ? 5 : 6;
		break;
	case OID_GEN_MAXIMUM_FRAME_SIZE:
		put32(info, is_reply("frame-0") ? 0 : is_reply("frame-65535") ? 65535 : 1500);
		ilen = 4;
		break;
	case OID_GEN_MEDIA_CONNECT_STATUS:
		put32(info, 0);		/* connected */
		ilen = 4;
		break;
	default:
		st = RNDIS_NOT_SUPPORTED;
	}
	memset(m, 0, 24 + 8);
	cmplt(m, RNDIS_QUERY | RNDIS_CMPLT, 24 + ilen, id, st);
	put32(m + 16, ilen);				/* InformationBufferLength */
	put32(m + 20, ilen ? 16 : 0);			/* InformationBufferOffset (from byte 8) */
	memcpy(m + 24, info, ilen);
	if (oid == OID_802_3_PERMANENT_ADDRESS && is_reply("mac-offset-wrap")) {
		/* 8 + InformationBufferOffset wraps a u32 to 0: the MAC would be the header */
		put32(m + 20, 0xfffffff8u);
	}
	if (oid == OID_802_3_PERMANENT_ADDRESS && is_reply("mac-len-wrap"))
		put32(m + 16, 0xfffffff0u);	/* 8 + 16 + length wraps to 8 */
	if (oid == OID_802_3_PERMANENT_ADDRESS && is_reply("mac-past-msg"))
		put32(m + 16, 400);	/* 400 bytes of MAC in a 30-byte message */
	return 24 + ilen;
}

/* ------------------------------------------------------------------ response queue ---- */

#define RQ_MAX 256
#define RQ_MSG 64

static pthread_mutex_t rq_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rq_cond = PTHREAD_COND_INITIALIZER;
static uint8_t rq_msg[RQ_MAX][RQ_MSG];
static size_t rq_len[RQ_MAX];
static int rq_head, rq_count, rq_announce;

static void rq_clear(void)
{
	pthread_mutex_lock(&rq_lock);
	rq_count = 0;
	rq_announce = 0;
	pthread_mutex_unlock(&rq_lock);
}

/* Queues a response and announces it; the oldest goes when the queue is full (a host that
 * never reads responses, as rndis_host at run time). */
static void rq_push(const uint8_t *m, size_t len)
{
	pthread_mutex_lock(&rq_lock);
	if (rq_count == RQ_MAX) {
		rq_head = (rq_head + 1) % RQ_MAX;
		rq_count--;
		atomic_fetch_add(&rq_dropped, 1);
	}
	memcpy(rq_msg[(rq_head + rq_count) % RQ_MAX], m, len);
	rq_len[(rq_head + rq_count) % RQ_MAX] = len;
	rq_count++;
	rq_announce++;
	pthread_cond_signal(&rq_cond);
	pthread_mutex_unlock(&rq_lock);
}

static size_t rq_pop(uint8_t *m)
{
	size_t len = 0;
	pthread_mutex_lock(&rq_lock);
	if (rq_count) {
		len = rq_len[rq_head];
		memcpy(m, rq_msg[rq_head], len);
		rq_head = (rq_head + 1) % RQ_MAX;
		rq_count--;
	}
	pthread_mutex_unlock(&rq_lock);
	return len;
}

/* One RESPONSE_AVAILABLE per queued response. A host that does not poll the interrupt
 * endpoint (the write times out) gets the backlog dropped: the responses stay queued. */
static void *announcer(void *arg)
{
	static const uint8_t avail[8] = {1, 0, 0, 0, 0, 0, 0, 0};
	(void)arg;
	normal_priority();
	for (;;) {
		ssize_t r;
		int fd;
		pthread_mutex_lock(&rq_lock);
		while (!rq_announce)
			pthread_cond_wait(&rq_cond, &rq_lock);
		rq_announce--;
		pthread_mutex_unlock(&rq_lock);
		fd = ep_int;
		if (fd < 0)
			continue;
		r = timed_write(fd, avail, sizeof avail, 500);
		if (r == (ssize_t)sizeof avail) {
			atomic_fetch_add(&notifications, 1);
		} else {
			pthread_mutex_lock(&rq_lock);
			rq_announce = 0;
			pthread_mutex_unlock(&rq_lock);
		}
	}
	return NULL;
}

/* "chatter": a KEEPALIVE and an INDICATE_STATUS (an unknown status) before each reply. */
static void chatter(void)
{
	static uint32_t ka_id = 0x1000;
	uint8_t m[24];
	int i;
	for (i = 0; i < 4; i++) {
		put32(m, RNDIS_KEEPALIVE);
		put32(m + 4, 12);
		put32(m + 8, ka_id++);
		rq_push(m, 12);
		put32(m, RNDIS_INDICATE);
		put32(m + 4, 20);
		put32(m + 8, 0x40010012u);	/* an indication nobody asked for */
		put32(m + 12, 0);
		put32(m + 16, 0);
		rq_push(m, 20);
	}
}

/* SEND_ENCAPSULATED_COMMAND: `c` is the command, `n` its bytes. */
static void rndis_command(const uint8_t *c, size_t n)
{
	uint8_t m[RQ_MSG];
	uint32_t type, id, oid;
	size_t len;
	if (n < 12)
		return;
	type = get32(c);
	id = get32(c + 8);
	switch (type) {
	case RNDIS_INITIALIZE:
		atomic_fetch_add(&inits, 1);
		rq_clear();
		if (is_reply("silent"))
			return;
		if (is_reply("chatter"))
			chatter();
		len = init_cmplt(m, id);
		rq_push(m, len);
		say("INITIALIZE id %u: %zu-byte reply (%s)", id, len, reply_case);
		return;
	case RNDIS_QUERY:
		if (n < 28)
			return;
		atomic_fetch_add(&queries, 1);
		oid = get32(c + 12);
		if (is_reply("chatter"))
			chatter();
		len = query_cmplt(m, id, oid);
		rq_push(m, len);
		say("QUERY %08x id %u: %zu-byte reply", oid, id, len);
		return;
	case RNDIS_SET:
		atomic_fetch_add(&sets, 1);
		if (is_reply("chatter"))
			chatter();
		memset(m, 0, 16);
		cmplt(m, RNDIS_SET | RNDIS_CMPLT, 16, id, RNDIS_SUCCESS);
		rq_push(m, 16);
		say("SET %08x id %u", n >= 16 ? get32(c + 12) : 0, id);
		return;
	case RNDIS_KEEPALIVE:
		memset(m, 0, 16);
		cmplt(m, RNDIS_KEEPALIVE | RNDIS_CMPLT, 16, id, RNDIS_SUCCESS);
		rq_push(m, 16);
		return;
	case RNDIS_KEEPALIVE | RNDIS_CMPLT:
		atomic_fetch_add(&ka_cmplt, 1);
		return;
	case RNDIS_HALT:
		atomic_fetch_add(&halts, 1);
		rq_clear();
		say("HALT");
		return;
	case RNDIS_RESET:
		memset(m, 0, 16);
		put32(m, RNDIS_RESET | RNDIS_CMPLT);
		put32(m + 4, 16);
		rq_push(m, 16);
		return;
	}
	say("RNDIS command %08x ignored", type);
}

/* Class requests on ep0; returns 0 when `s` is not one of ours. */
static int rndis_setup(const struct usb_ctrlrequest *s)
{
	uint8_t buf[1100];
	if (s->bRequestType == (USB_DIR_OUT | USB_TYPE_CLASS | USB_RECIP_INTERFACE) &&
	    s->bRequest == 0x00) {	/* SEND_ENCAPSULATED_COMMAND */
		/* the data stage first, before anything that may block (a log line): the
		 * host's next request would overwrite this one */
		size_t want = s->wLength < sizeof buf ? s->wLength : sizeof buf;
		ssize_t r = want ? read(ep0_fd, buf, want) : 0;
		if (!want)
			ack();
		if (r < 0)
			say("SEND_ENCAPSULATED_COMMAND of %u bytes lost: %s", s->wLength, strerror(errno));
		if (r > 0)
			rndis_command(buf, r);
		return 1;
	}
	if (s->bRequestType == (USB_DIR_IN | USB_TYPE_CLASS | USB_RECIP_INTERFACE) &&
	    s->bRequest == 0x01) {	/* GET_ENCAPSULATED_RESPONSE */
		size_t n = rq_pop(buf);
		if (!n) {
			stall(s);
			return 1;
		}
		reply(buf, n < s->wLength ? n : s->wLength);
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ data ---- */

/* A PACKET_MSG with a `len`-byte frame at b; returns its length. */
static size_t packet_msg(uint8_t *b, size_t len)
{
	memset(b, 0, RNDIS_HDR);
	put32(b, RNDIS_PACKET);
	put32(b + 4, RNDIS_HDR + len);
	put32(b + 8, RNDIS_HDR - 8);	/* DataOffset, from byte 8 */
	put32(b + 12, len);
	make_frame(b + RNDIS_HDR, len, frame_counter);
	return RNDIS_HDR + len;
}

static size_t packet_one(uint8_t *b) { return packet_msg(b, next_frame_len()); }

struct rxfer {
	uint8_t b[8192];
	size_t len;
};

struct rndis_case {
	const char *name;
	const char *what;
	void (*build)(struct rxfer *t, int *min, int *max);
};

static void r_off_wrap(struct rxfer *t, int *mn, int *mx)
{
	t->len = packet_one(t->b);
	put32(t->b + 8, 0xfffffff8u);		/* 8 + DataOffset wraps a u32 to 0 */
	*mn = 0; *mx = 0;
}
static void r_len_wrap(struct rxfer *t, int *mn, int *mx)
{
	t->len = packet_one(t->b);
	put32(t->b + 12, 0xffffffffu);		/* offset + length wraps */
	*mn = 0; *mx = 0;
}
static void r_past_msg(struct rxfer *t, int *mn, int *mx)
{
	/* DataLength runs past MessageLength, but not past the transfer (junk follows) */
	size_t n = packet_one(t->b);
	memset(t->b + n, 0xaa, 200);
	put32(t->b + 12, get32(t->b + 12) + 100);
	t->len = n + 200;
	*mn = 0; *mx = 0;
}
static void r_in_header(struct rxfer *t, int *mn, int *mx)
{
	t->len = packet_one(t->b);
	put32(t->b + 8, 0);			/* the frame would start at MessageType */
	put32(t->b + 12, 60);
	*mn = 0; *mx = 0;
}
static void r_msglen0(struct rxfer *t, int *mn, int *mx)
{
	t->len = packet_one(t->b);
	put32(t->b + 4, 0);
	*mn = 0; *mx = 0;
}
static void r_msglen_short(struct rxfer *t, int *mn, int *mx)
{
	t->len = packet_one(t->b);
	put32(t->b + 4, 20);			/* < the 44-byte header */
	*mn = 0; *mx = 0;
}
static void r_msglen_big(struct rxfer *t, int *mn, int *mx)
{
	t->len = packet_one(t->b);
	put32(t->b + 4, t->len + 500);		/* more than the transfer */
	*mn = 0; *mx = 0;
}
static void r_wrong_type(struct rxfer *t, int *mn, int *mx)
{
	t->len = packet_one(t->b);
	put32(t->b, RNDIS_INITIALIZE | RNDIS_CMPLT);
	*mn = 0; *mx = 0;
}
static void r_three(struct rxfer *t, size_t *at)
{
	size_t n = 0;
	int i;
	for (i = 0; i < 3; i++) {
		at[i] = n;
		n += packet_msg(t->b + n, 60 + 20 * i);
	}
	t->len = n;
}
static void r_mid_data_lie(struct rxfer *t, int *mn, int *mx)
{
	/* three messages; the middle one's DataLength runs past its MessageLength */
	size_t at[3];
	frame_counter++;
	r_three(t, at);
	put32(t->b + at[1] + 12, 200);
	*mn = 1; *mx = 2;
}
static void r_mid_len_lie(struct rxfer *t, int *mn, int *mx)
{
	/* three messages; the middle one's MessageLength runs past the transfer */
	size_t at[3];
	frame_counter++;
	r_three(t, at);
	put32(t->b + at[1] + 4, 4000);
	*mn = 1; *mx = 1;
}
static void r_mid_len_short(struct rxfer *t, int *mn, int *mx)
{
	/* three messages; the middle one's MessageLength (60) cuts its own frame */
	size_t at[3];
	frame_counter++;
	r_three(t, at);
	put32(t->b + at[1] + 4, 60);
	*mn = 1; *mx = 1;
}
static void r_five(struct rxfer *t, int *mn, int *mx)
{
	/* five well-formed messages in one transfer: legal */
	size_t n = 0;
	int i;
	frame_counter++;
	for (i = 0; i < 5; i++)
		n += packet_msg(t->b + n, 60 + 4 * i);
	t->len = n;
	*mn = 5; *mx = 5;
}
static void r_zero_len(struct rxfer *t, int *mn, int *mx)
{
	t->len = packet_one(t->b);
	put32(t->b + 12, 0);
	*mn = 0; *mx = 0;
}
static void r_runt(struct rxfer *t, int *mn, int *mx)
{
	t->len = packet_msg(t->b, 60);
	put32(t->b + 12, 5);
	*mn = 0; *mx = 0;
}
static void r_giant(struct rxfer *t, int *mn, int *mx)
{
	/* a 1600-byte frame: larger than any 1500-MTU Ethernet frame */
	t->len = packet_msg(t->b, 1600);
	*mn = 0; *mx = 0;
}
static void r_oob_out(struct rxfer *t, int *mn, int *mx)
{
	/* a good frame whose out-of-band and per-packet-info fields point far outside */
	t->len = packet_one(t->b);
	put32(t->b + 16, 0xfffffff0u);		/* OOBDataOffset */
	put32(t->b + 20, 4096);			/* OOBDataLength */
	put32(t->b + 24, 3);			/* NumOOBDataElements */
	put32(t->b + 28, 0x7ffffff0u);		/* PerPacketInfoOffset */
	put32(t->b + 32, 0xffffffffu);		/* PerPacketInfoLength */
	*mn = 0; *mx = 1;
}
static void r_trailing_junk(struct rxfer *t, int *mn, int *mx)
{
	/* a good message, then 20 bytes that are not one */
	size_t n = packet_one(t->b);
	memset(t->b + n, 0x5a, 20);
	t->len = n + 20;
	*mn = 1; *mx = 1;
}
static void r_garbage(struct rxfer *t, int *mn, int *mx)
{
	unsigned x = 0x87654321;
	size_t i;
	t->len = 1000;
	for (i = 0; i < t->len; i++) {
		x = x * 1103515245 + 12345;
		t->b[i] = x >> 16;
	}
	*mn = 0; *mx = 0;
}

static const struct rndis_case rndis_cases[] = {
	{"data-offset-wrap", "DataOffset 0xfffffff8 (8 + offset wraps to 0)", r_off_wrap},
	{"data-len-wrap", "DataLength 0xffffffff", r_len_wrap},
	{"data-past-msg", "DataLength past MessageLength (inside the transfer)", r_past_msg},
	{"data-in-header", "DataOffset 0: the frame overlaps the header", r_in_header},
	{"msglen-0", "MessageLength 0", r_msglen0},
	{"msglen-20", "MessageLength 20 (< 44)", r_msglen_short},
	{"msglen-big", "MessageLength 500 past the transfer", r_msglen_big},
	{"wrong-type", "INITIALIZE_CMPLT on bulk IN", r_wrong_type},
	{"mid-data-lie", "3 messages, the middle DataLength past its message", r_mid_data_lie},
	{"mid-len-lie", "3 messages, the middle MessageLength past the transfer", r_mid_len_lie},
	{"mid-len-short", "3 messages, the middle MessageLength cuts its frame", r_mid_len_short},
	{"five-per-transfer", "5 good messages in one transfer", r_five},
	{"data-zero-len", "DataLength 0", r_zero_len},
	{"runt", "a 5-byte frame", r_runt},
	{"giant", "a 1600-byte frame", r_giant},
	{"oob-ppi-outside", "OOB and per-packet-info offsets far outside", r_oob_out},
	{"trailing-junk", "a good message, then 20 bytes of junk", r_trailing_junk},
	{"garbage", "1000 random bytes", r_garbage},
	{NULL, NULL, NULL},
};

static int rndis_send_valid(void)
{
	uint8_t b[RNDIS_HDR + 1000];
	size_t n = packet_one(b);
	return send_in(b, n);
}

static void rndis_data_case(const char *name)
{
	static struct rxfer t;
	const struct rndis_case *c;
	int mn = 0, mx = 0, err = 0;
	for (c = rndis_cases; c->name; c++)
		if (!strcmp(c->name, name))
			break;
	if (!c->name) {
		say("done case %s unknown", name);
		return;
	}
	err |= rndis_send_valid();
	memset(t.b, 0, sizeof t.b);
	c->build(&t, &mn, &mx);
	err |= send_in(t.b, t.len);
	usleep(50000);
	err |= rndis_send_valid();
	say("done case %s expect_min=%d expect_max=%d bytes=%zu io=%s", name, mn + 2, mx + 2, t.len,
	    err ? "error" : "ok");
}

/* ------------------------------------------------------------------ status cases ---- */

static void indicate(uint8_t *m, uint32_t st)
{
	put32(m, RNDIS_INDICATE);
	put32(m + 4, 20);
	put32(m + 8, st);
	put32(m + 12, 0);
	put32(m + 16, 0);
}

/* Builds the malformed INDICATE_STATUS messages of "indicate-bad" into m[i]; returns n. */
static int bad_indications(uint8_t m[][RQ_MSG], size_t *len)
{
	int n = 0;
	/* media disconnect whose status buffer offset wraps */
	indicate(m[n], 0x4001000cu);
	put32(m[n] + 12, 16);
	put32(m[n] + 16, 0xfffffff8u);
	len[n++] = 20;
	/* media disconnect whose buffer runs past the message */
	indicate(m[n], 0x4001000cu);
	put32(m[n] + 12, 1000);
	put32(m[n] + 16, 12);
	len[n++] = 20;
	/* MessageLength larger than the bytes sent */
	indicate(m[n], 0x4001000cu);
	put32(m[n] + 4, 900);
	len[n++] = 20;
	/* 10 bytes */
	indicate(m[n], 0x4001000cu);
	put32(m[n] + 4, 10);
	len[n++] = 10;
	return n;
}

static const char *rndis_status_cases[] = {"indicate-bad", "response-flood", "keepalive-flood", NULL};

/* Every case ends with a valid INDICATE_STATUS media connect, then one valid frame. */
static void rndis_status_case(const char *name)
{
	static const uint8_t avail[8] = {1, 0, 0, 0, 0, 0, 0, 0};
	uint8_t m[8][RQ_MSG];
	size_t len[8];
	unsigned long ka0 = atomic_load(&ka_cmplt);
	int i, n, err = 0, sent = 0;
	if (!strcmp(name, "indicate-bad")) {
		n = bad_indications(m, len);
		for (i = 0; i < n; i++)
			rq_push(m[i], len[i]);
		sent = n;
	} else if (!strcmp(name, "response-flood")) {
		/* 200 RESPONSE_AVAILABLE with nothing queued behind them */
		for (i = 0; i < 200 && !err; i++) {
			err |= send_int(avail, sizeof avail);
			sent++;
		}
	} else if (!strcmp(name, "keepalive-flood")) {
		for (i = 0; i < 200; i++) {
			put32(m[0], RNDIS_KEEPALIVE);
			put32(m[0] + 4, 12);
			put32(m[0] + 8, 0x2000 + i);
			rq_push(m[0], 12);
		}
		sent = 200;
	} else {
		say("done notify %s unknown", name);
		return;
	}
	/* let the announcer drain before the closing connect */
	for (i = 0; i < 100; i++) {
		int left;
		pthread_mutex_lock(&rq_lock);
		left = rq_announce;
		pthread_mutex_unlock(&rq_lock);
		if (!left)
			break;
		usleep(50000);
	}
	indicate(m[0], RNDIS_MEDIA_CONNECT);
	rq_push(m[0], 20);
	usleep(300000);
	err |= rndis_send_valid();
	say("done notify %s transfers=%d keepalives_answered=%lu io=%s", name, sent,
	    atomic_load(&ka_cmplt) - ka0, err ? "error" : "ok");
}

static void rndis_connect(void)
{
	uint8_t m[20];
	indicate(m, RNDIS_MEDIA_CONNECT);
	rq_push(m, 20);
	say("done connect io=ok");
}

/* ------------------------------------------------------------------ bulk OUT ---- */

/* Checks one OUT transfer as a run of PACKET_MSGs (a trailing pad byte allowed). */
static void rndis_check_out(const uint8_t *b, size_t n)
{
	size_t at = 0;
	unsigned frames = 0;
	atomic_fetch_add(&out_transfers, 1);
	atomic_fetch_add(&out_bytes, n);
	if (adv_out_max && n > adv_out_max + 1)
		atomic_fetch_add(&out_oversize, 1);
	while (n - at >= 8) {
		uint32_t len = get32(b + at + 4), off, dlen;
		if (get32(b + at) != RNDIS_PACKET || len < RNDIS_HDR || len > n - at)
			goto bad;
		off = get32(b + at + 8);
		dlen = get32(b + at + 12);
		if (off < RNDIS_HDR - 8 || off > len - 8 || dlen > len - 8 - off || dlen < 14)
			goto bad;
		frames++;
		at += len;
	}
	if (!frames)
		goto bad;
	atomic_fetch_add(&out_good, 1);
	atomic_fetch_add(&out_frames, frames);
	return;
bad:
	atomic_fetch_add(&out_bad, 1);
}

/* ------------------------------------------------------------------ seeds, list ---- */

static void rndis_dump_seeds(const char *dir, int *count)
{
	static struct rxfer t;
	const struct rndis_case *c;
	const char **p;
	uint8_t m[8][RQ_MSG];
	size_t len[8];
	int mn, mx, i, n;
	const char *saved = reply_case;

	for (c = rndis_cases; c->name; c++) {
		memset(t.b, 0, sizeof t.b);
		c->build(&t, &mn, &mx);
		write_file(dir, "rndis", c->name, NULL, 0, t.b, t.len);
		(*count)++;
	}
	/* the reply that makes each bring-up case */
	for (p = reply_cases; *p; p++) {
		char name[64];
		uint8_t r[RQ_MSG];
		size_t rl;
		if (!strcmp(*p, "silent") || !strcmp(*p, "chatter"))
			continue;
		reply_case = *p;
		if (!strncmp(*p, "init-", 5) || !strcmp(*p, "normal")) {
			rl = init_cmplt(r, 1);
			snprintf(name, sizeof name, "reply-%s", *p);
			write_file(dir, "rndis", name, NULL, 0, r, rl);
			(*count)++;
		}
		if (strncmp(*p, "init-", 5)) {
			rl = query_cmplt(r, 2, !strncmp(*p, "frame-", 6) ? OID_GEN_MAXIMUM_FRAME_SIZE
									 : OID_802_3_PERMANENT_ADDRESS);
			snprintf(name, sizeof name, "reply-%s-query", *p);
			write_file(dir, "rndis", name, NULL, 0, r, rl);
			(*count)++;
		}
	}
	reply_case = saved;
	n = bad_indications(m, len);
	for (i = 0; i < n; i++) {
		char name[64];
		snprintf(name, sizeof name, "indicate-bad-%d", i);
		write_file(dir, "rndis", name, NULL, 0, m[i], len[i]);
		(*count)++;
	}
}

static void rndis_list(void)
{
	const struct rndis_case *c;
	const char **p;
	for (c = rndis_cases; c->name; c++)
		printf("case %s\t%s\n", c->name, c->what);
	for (p = rndis_status_cases; *p; p++)
		printf("notify %s\n", *p);
	for (p = reply_cases; *p; p++)
		printf("reply %s\n", *p);
}
