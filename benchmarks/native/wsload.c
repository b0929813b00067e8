/* wsload: the fan-out benchmark's load generator in C, one epoll loop holding every WebSocket subscriber.
 *
 *   wsload HOST PORT PATH CONNECTIONS SUBSCRIBE [--socketio] [--deflate] [--concurrency K] [--open-timeout S]
 *
 * Every connection upgrades (RFC 6455), sends SUBSCRIBE as a masked text frame and waits for a message whose
 * "type" is "snapshot". With --socketio the same messages travel inside Socket.IO packets: the connection joins
 * namespace "/" after the Engine.IO open packet, sends 42["subscribe",SUBSCRIBE], answers Engine.IO pings and
 * records 42[...] events. With --deflate it offers permessage-deflate and keeps compressed payloads as they came
 * (the RSV1 flag is recorded); only the messages read before a connection's snapshot are inflated here.
 *
 * At most K connections (default 100) are opening at once; one without its snapshot S seconds (default 120) after
 * it started to connect has failed. Once all connections have their snapshot (or failed), it prints one JSON line, then reads commands on stdin
 * and answers each with one JSON line on stdout:
 *
 *   mark              forget what was recorded, mark the CPU and wall clocks     -> {"event":"marked"}
 *   wait N IDLE_S     until N messages are recorded (since the mark or the last dump), or none came for IDLE_S s
 *                     -> {"event":"waited","count":..,"idle":..,"cpu_s":..,"wall_s":..,"dropped":..}
 *                     cpu_s and wall_s run from the mark to the last message received
 *   dump PATH         write the recorded messages to PATH and forget them         -> {"event":"dumped","count":..}
 *   quit              close every connection and exit                             -> {"event":"closed",..}
 *
 * A record in the dump is little-endian: u32 connection, u32 payload length, f64 receive time (CLOCK_REALTIME,
 * seconds), u32 flags (1: compressed), then the payload. Receiving costs one read per readable socket and one
 * copy per message; nothing is parsed while measuring, so the client stays far cheaper per message than any
 * server it measures.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

enum state { IDLE, CONNECTING, HANDSHAKE, OPEN, SUBSCRIBED, CLOSED };

typedef struct {
    char *data;
    size_t len, cap;
} buf_t;

typedef struct {
    int fd;
    uint32_t index;
    enum state state;
    int writing;   /* EPOLLOUT is armed */
    double opened; /* when it started to connect (CLOCK_MONOTONIC) */
    buf_t in;      /* bytes read but not yet a whole frame */
    buf_t msg;     /* a fragmented message being put together */
    int msg_rsv1;
    buf_t out;     /* bytes to send once the socket takes them */
} conn_t;

static conn_t *conns;
static int n_conns, epfd, socketio, offer_deflate, concurrency = 100;
static const char *host, *port, *path, *subscribe;
static struct addrinfo *addr;

static int next_conn, opening, subscribed, failed, dropped;
static double started, open_timeout_s = 120;

#define MAX_ERRORS 5
static char errors[MAX_ERRORS][160];
static int n_errors;

/* What was recorded since the mark or the last dump. */
static buf_t arena;
static uint64_t recorded;
static double mark_cpu, mark_wall, last_cpu, last_wall;

/* A pending `wait`. */
static int waiting;
static uint64_t wait_count;
static double wait_idle_s;

static char rbuf[1 << 18];

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "wsload: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void *xrealloc(void *p, size_t size) {
    void *q = realloc(p, size);
    if (!q) die("out of memory");
    return q;
}

static void buf_reserve(buf_t *b, size_t more) {
    if (b->len + more <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more) cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

static void buf_append(buf_t *b, const void *data, size_t len) {
    buf_reserve(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static void buf_free(buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static void add_error(const char *fmt, ...) {
    if (n_errors >= MAX_ERRORS) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errors[n_errors], sizeof errors[0], fmt, ap);
    va_end(ap);
    for (char *c = errors[n_errors]; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20) *c = ' ';
    n_errors++;
}

static void print_errors(void) {
    printf("\"errors\":[");
    for (int i = 0; i < n_errors; i++) printf("%s\"%s\"", i ? "," : "", errors[i]);
    printf("]");
}

/* --- sending ---------------------------------------------------------------------------------------------------- */

static void arm(conn_t *c, int writing) {
    if (c->writing == writing) return;
    struct epoll_event ev = {.events = EPOLLIN | (writing ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
    c->writing = writing;
}

static void flush(conn_t *c) {
    while (c->out.len) {
        ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            return; /* the read side sees the error */
        }
        memmove(c->out.data, c->out.data + n, c->out.len - (size_t)n);
        c->out.len -= (size_t)n;
    }
    arm(c, c->out.len > 0);
}

/* Queue one masked frame (a client's frames are always masked) and try to send it. */
static void send_frame(conn_t *c, int opcode, const char *payload, size_t len) {
    unsigned char head[14];
    size_t h = 0;
    static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    head[h++] = 0x80 | (unsigned char)opcode;
    if (len < 126) {
        head[h++] = 0x80 | (unsigned char)len;
    } else if (len < 65536) {
        head[h++] = 0x80 | 126;
        head[h++] = (unsigned char)(len >> 8);
        head[h++] = (unsigned char)len;
    } else {
        head[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) head[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    memcpy(head + h, key, 4);
    h += 4;
    buf_append(&c->out, head, h);
    buf_reserve(&c->out, len);
    for (size_t i = 0; i < len; i++) c->out.data[c->out.len + i] = (char)(payload[i] ^ key[i & 3]);
    c->out.len += len;
    flush(c);
}

static void send_text(conn_t *c, const char *text) { send_frame(c, 0x1, text, strlen(text)); }

/* --- connection life -------------------------------------------------------------------------------------------- */

static void open_next(void);

static void close_conn(conn_t *c) {
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    buf_free(&c->in);
    buf_free(&c->msg);
    buf_free(&c->out);
    c->state = CLOSED;
}

/* A connection that has not reached its snapshot failed; one that had was dropped. */
static void lost(conn_t *c, const char *fmt, ...) {
    char why[120];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    add_error("connection %u: %s", c->index, why);
    if (c->state == SUBSCRIBED) {
        dropped++;
    } else if (c->state != CLOSED) {
        failed++;
        opening--;
    }
    close_conn(c);
    open_next();
}

static void open_conn(conn_t *c) {
    c->fd = socket(addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = CONNECTING;
    c->opened = clock_s(CLOCK_MONOTONIC);
    opening++;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    c->writing = 1;
    if (connect(c->fd, addr->ai_addr, addr->ai_addrlen) < 0 && errno != EINPROGRESS)
        lost(c, "connect: %s", strerror(errno));
}

static void open_next(void) {
    while (opening < concurrency && next_conn < n_conns) open_conn(&conns[next_conn++]);
}

/* Fail the connections that have been opening for longer than the timeout (checked once a second). */
static void expire_opening(void) {
    static double checked;
    double now = clock_s(CLOCK_MONOTONIC);
    if (now - checked < 1) return;
    checked = now;
    for (int i = 0; i < next_conn; i++) {
        conn_t *c = &conns[i];
        if (c->state >= CONNECTING && c->state <= OPEN && now - c->opened > open_timeout_s)
            lost(c, "no snapshot within %.0f s", open_timeout_s);
    }
}

static void connected(conn_t *c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        lost(c, "connect: %s", strerror(err));
        return;
    }
    char request[1024];
    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                     path, host, port, offer_deflate ? "Sec-WebSocket-Extensions: permessage-deflate\r\n" : "");
    c->state = HANDSHAKE;
    buf_append(&c->out, request, (size_t)n);
    flush(c);
}

static void became_subscribed(conn_t *c) {
    c->state = SUBSCRIBED;
    subscribed++;
    opening--;
    open_next();
}

/* The value of the first "type" key of a JSON message (NUL-terminated), or "". */
static void message_type(const char *json, char *out, size_t size) {
    out[0] = 0;
    const char *p = strstr(json, "\"type\"");
    if (!p) return;
    p += 6;
    while (*p == ' ' || *p == ':') p++;
    if (*p++ != '"') return;
    size_t i = 0;
    while (*p && *p != '"' && i + 1 < size) out[i++] = *p++;
    out[i] = 0;
}

/* A whole text message read before the connection's snapshot (inflated if compressed). */
static void before_snapshot(conn_t *c, const char *payload, size_t len, int rsv1) {
    buf_t text = {0};
    if (rsv1) {
        z_stream z = {0};
        unsigned char tail[4] = {0, 0, 0xff, 0xff};
        if (inflateInit2(&z, -MAX_WBITS) != Z_OK) die("inflateInit2");
        buf_t in = {0};
        buf_append(&in, payload, len);
        buf_append(&in, tail, 4);
        z.next_in = (unsigned char *)in.data;
        z.avail_in = (unsigned)in.len;
        int rc;
        do {
            buf_reserve(&text, 4096);
            z.next_out = (unsigned char *)text.data + text.len;
            z.avail_out = (unsigned)(text.cap - text.len);
            rc = inflate(&z, Z_SYNC_FLUSH);
            text.len = text.cap - z.avail_out;
        } while (rc == Z_OK && z.avail_in > 0);
        inflateEnd(&z);
        buf_free(&in);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
            buf_free(&text);
            lost(c, "a compressed message did not inflate");
            return;
        }
    } else {
        buf_append(&text, payload, len);
    }
    buf_append(&text, "", 1);
    const char *body = text.data;
    if (socketio) {
        if (strcmp(body, "2") == 0) {
            send_text(c, "3");
        } else if (body[0] == '0') { /* Engine.IO open: join the default namespace */
            send_text(c, "40");
        } else if (strncmp(body, "40", 2) == 0) { /* joined: subscribe */
            buf_t frame = {0};
            buf_append(&frame, "42[\"subscribe\",", 15);
            buf_append(&frame, subscribe, strlen(subscribe));
            buf_append(&frame, "]", 2);
            send_text(c, frame.data);
            buf_free(&frame);
        }
        if (strncmp(body, "42", 2) != 0) {
            buf_free(&text);
            return;
        }
        body += 2;
    }
    char type[32];
    message_type(body, type, sizeof type);
    if (strcmp(type, "snapshot") == 0) {
        became_subscribed(c);
    } else if (strcmp(type, "error") == 0) {
        lost(c, "error before the snapshot: %.80s", body);
    }
    buf_free(&text);
}

static void record(conn_t *c, const char *payload, size_t len, int rsv1) {
    if (socketio && (len < 2 || payload[0] != '4' || payload[1] != '2')) {
        if (len == 1 && payload[0] == '2') send_text(c, "3"); /* Engine.IO ping */
        return;
    }
    struct {
        uint32_t conn, len;
        double received;
        uint32_t flags;
    } __attribute__((packed)) head = {c->index, (uint32_t)len, clock_s(CLOCK_REALTIME), (uint32_t)rsv1};
    buf_reserve(&arena, sizeof head + len);
    memcpy(arena.data + arena.len, &head, sizeof head);
    memcpy(arena.data + arena.len + sizeof head, payload, len);
    arena.len += sizeof head + len;
    recorded++;
}

static void on_message(conn_t *c, const char *payload, size_t len, int rsv1) {
    if (c->state == SUBSCRIBED)
        record(c, payload, len, rsv1);
    else
        before_snapshot(c, payload, len, rsv1);
}

/* Handle the whole frames at the start of data; return how many bytes they took. */
static size_t frames(conn_t *c, const char *data, size_t len) {
    size_t pos = 0;
    while (c->state == OPEN || c->state == SUBSCRIBED) {
        const unsigned char *p = (const unsigned char *)data + pos;
        size_t left = len - pos;
        if (left < 2) break;
        int fin = p[0] & 0x80, rsv1 = (p[0] & 0x40) != 0, opcode = p[0] & 0x0f;
        if (p[1] & 0x80) {
            lost(c, "the server sent a masked frame");
            break;
        }
        uint64_t size = p[1] & 0x7f;
        size_t h = 2;
        if (size == 126) {
            if (left < 4) break;
            size = ((uint64_t)p[2] << 8) | p[3];
            h = 4;
        } else if (size == 127) {
            if (left < 10) break;
            size = 0;
            for (int i = 0; i < 8; i++) size = (size << 8) | p[2 + i];
            h = 10;
        }
        if (left < h + size) break;
        const char *payload = (const char *)p + h;
        pos += h + (size_t)size;
        if (opcode == 0x1 || opcode == 0x2) {
            if (fin) {
                if (opcode == 0x1) on_message(c, payload, (size_t)size, rsv1);
            } else {
                c->msg.len = 0;
                c->msg_rsv1 = opcode == 0x1 ? rsv1 : -1;
                buf_append(&c->msg, payload, (size_t)size);
            }
        } else if (opcode == 0x0) {
            buf_append(&c->msg, payload, (size_t)size);
            if (fin && c->msg_rsv1 >= 0) on_message(c, c->msg.data, c->msg.len, c->msg_rsv1);
            if (fin) c->msg.len = 0;
        } else if (opcode == 0x9) {
            send_frame(c, 0xA, payload, (size_t)size);
        } else if (opcode == 0x8) {
            int code = size >= 2 ? (p[h] << 8) | p[h + 1] : 1005;
            lost(c, "closed by the server, code %d", code);
            break;
        }
    }
    return pos;
}

/* The server's answer to the upgrade; the bytes after it are frames. */
static size_t handshake(conn_t *c, const char *data, size_t len) {
    const char *end = memmem(data, len, "\r\n\r\n", 4);
    if (!end) return 0;
    if (len < 12 || memcmp(data, "HTTP/1.1 101", 12) != 0) {
        lost(c, "upgrade refused: %.40s", data);
        return len;
    }
    c->state = OPEN;
    if (!socketio) send_text(c, subscribe);
    return (size_t)(end + 4 - data);
}

static size_t consume(conn_t *c, const char *data, size_t len) {
    size_t used = 0;
    if (c->state == HANDSHAKE) used = handshake(c, data, len);
    if (c->state == OPEN || c->state == SUBSCRIBED) used += frames(c, data + used, len - used);
    return used;
}

static void readable(conn_t *c) {
    for (;;) {
        ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
        if (n == 0) {
            lost(c, "the server closed the connection");
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            lost(c, "recv: %s", strerror(errno));
            return;
        }
        if (c->in.len == 0) { /* the common case: whole frames straight from the read buffer */
            size_t used = consume(c, rbuf, (size_t)n);
            if (c->state == CLOSED) return;
            if (used < (size_t)n) buf_append(&c->in, rbuf + used, (size_t)n - used);
        } else {
            buf_append(&c->in, rbuf, (size_t)n);
            size_t used = consume(c, c->in.data, c->in.len);
            if (c->state == CLOSED) return;
            memmove(c->in.data, c->in.data + used, c->in.len - used);
            c->in.len -= used;
        }
        if ((size_t)n < sizeof rbuf) return;
    }
}

/* --- commands --------------------------------------------------------------------------------------------------- */

static char cmdline[4096];
static size_t cmdlen;
static int quitting;

static void answer_wait(int idle) {
    printf("{\"event\":\"waited\",\"count\":%llu,\"idle\":%s,\"cpu_s\":%.6f,\"wall_s\":%.6f,\"dropped\":%d,",
           (unsigned long long)recorded, idle ? "true" : "false", last_cpu - mark_cpu, last_wall - mark_wall,
           dropped);
    print_errors();
    printf("}\n");
    fflush(stdout);
    waiting = 0;
}

static void check_wait(void) {
    if (!waiting) return;
    if (recorded >= wait_count)
        answer_wait(0);
    else if (clock_s(CLOCK_MONOTONIC) - last_wall > wait_idle_s)
        answer_wait(1);
}

static void command(char *line) {
    char what[16] = {0}, arg[3000] = {0};
    double idle_s = 15;
    unsigned long long count = 0;
    if (sscanf(line, "%15s", what) != 1) return;
    if (strcmp(what, "mark") == 0) {
        arena.len = 0;
        recorded = 0;
        mark_cpu = last_cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        mark_wall = last_wall = clock_s(CLOCK_MONOTONIC);
        printf("{\"event\":\"marked\"}\n");
    } else if (strcmp(what, "wait") == 0 && sscanf(line, "%*s %llu %lf", &count, &idle_s) == 2) {
        waiting = 1;
        wait_count = count;
        wait_idle_s = idle_s;
        last_wall = last_wall > 0 ? last_wall : clock_s(CLOCK_MONOTONIC);
        check_wait();
    } else if (strcmp(what, "dump") == 0 && sscanf(line, "%*s %2999s", arg) == 1) {
        FILE *f = fopen(arg, "wb");
        if (!f || fwrite(arena.data, 1, arena.len, f) != arena.len || fclose(f) != 0) die(arg);
        printf("{\"event\":\"dumped\",\"count\":%llu}\n", (unsigned long long)recorded);
        arena.len = 0;
        recorded = 0;
    } else if (strcmp(what, "quit") == 0) {
        quitting = 1;
    } else {
        printf("{\"event\":\"error\",\"message\":\"unknown command\"}\n");
    }
    fflush(stdout);
}

static void stdin_readable(void) {
    ssize_t n = read(0, cmdline + cmdlen, sizeof cmdline - 1 - cmdlen);
    if (n <= 0) {
        quitting = 1;
        return;
    }
    cmdlen += (size_t)n;
    char *nl;
    while ((nl = memchr(cmdline, '\n', cmdlen))) {
        *nl = 0;
        command(cmdline);
        size_t used = (size_t)(nl + 1 - cmdline);
        memmove(cmdline, nl + 1, cmdlen - used);
        cmdlen -= used;
    }
    if (cmdlen == sizeof cmdline - 1) cmdlen = 0; /* an overlong line: drop it */
}

/* --- main ------------------------------------------------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr,
            "usage: wsload HOST PORT PATH CONNECTIONS SUBSCRIBE [--socketio] [--deflate] [--concurrency K]\n"
            "              [--open-timeout S]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 6) usage();
    host = argv[1];
    port = argv[2];
    path = argv[3];
    n_conns = atoi(argv[4]);
    subscribe = argv[5];
    for (int i = 6; i < argc; i++) {
        if (strcmp(argv[i], "--socketio") == 0)
            socketio = 1;
        else if (strcmp(argv[i], "--deflate") == 0)
            offer_deflate = 1;
        else if (strcmp(argv[i], "--concurrency") == 0 && i + 1 < argc)
            concurrency = atoi(argv[++i]);
        else if (strcmp(argv[i], "--open-timeout") == 0 && i + 1 < argc)
            open_timeout_s = atof(argv[++i]);
        else
            usage();
    }
    if (n_conns <= 0 || concurrency <= 0 || open_timeout_s <= 0) usage();
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = getaddrinfo(host, port, &hints, &addr);
    if (rc != 0) {
        fprintf(stderr, "wsload: %s:%s: %s\n", host, port, gai_strerror(rc));
        return 2;
    }
    epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");
    conns = calloc((size_t)n_conns, sizeof *conns);
    if (!conns) die("calloc");
    for (int i = 0; i < n_conns; i++) conns[i] = (conn_t){.fd = -1, .index = (uint32_t)i};

    started = clock_s(CLOCK_MONOTONIC);
    open_next();
    struct epoll_event events[1024];
    int reported = 0, stdin_added = 0;
    while (!quitting) {
        if (!reported && subscribed + failed >= n_conns) {
            printf("{\"event\":\"subscribed\",\"connections\":%d,\"failed\":%d,\"seconds\":%.3f,", subscribed, failed,
                   clock_s(CLOCK_MONOTONIC) - started);
            print_errors();
            printf("}\n");
            fflush(stdout);
            reported = 1;
        }
        if (reported && !stdin_added) { /* commands only once every connection is settled */
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
            if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev) < 0) die("epoll_ctl stdin");
            stdin_added = 1;
        }
        int n = epoll_wait(epfd, events, 1024, waiting ? 10 : 1000);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        uint64_t before = recorded;
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (!c) {
                stdin_readable();
                continue;
            }
            if (c->state == CLOSED) continue;
            if (c->state == CONNECTING) {
                if (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) connected(c);
                continue;
            }
            if (events[i].events & EPOLLOUT) flush(c);
            if (c->state != CLOSED && events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) readable(c);
        }
        if (recorded > before) { /* progress: the clocks `wait` answers with */
            last_cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID);
            last_wall = clock_s(CLOCK_MONOTONIC);
        }
        check_wait();
        if (!reported) expire_opening();
    }
    int open_count = 0;
    for (int i = 0; i < n_conns; i++) {
        if (conns[i].state != CLOSED && conns[i].fd >= 0) {
            open_count++;
            close_conn(&conns[i]);
        }
    }
    printf("{\"event\":\"closed\",\"closed\":%d,\"dropped\":%d}\n", open_count, dropped);
    fflush(stdout);
    return 0;
}
