/*
 * smtp_sink: a fast, single-threaded epoll ESMTP sink for benchmarking SMTP
 * *clients* (bench/run.py builds it with the system C compiler and starts it).
 * It accepts everything (except recipients whose local part starts with
 * "reject", which get 550), counts bytes and throws the data away, so that the
 * time a benchmark measures is the client's.
 *
 *   usage: smtp_sink [-b ADDR] [-t MAX_SECONDS] PORT   (PORT 0 = pick a free port)
 *
 * -t makes the sink exit by itself after MAX_SECONDS (a safety bound for
 * benchmark runs); the default is to run until signalled.
 *
 * On start it prints "LISTENING <port>" on stdout.  On SIGTERM/SIGINT it
 * prints one line of totals ("STATS ...") on stdout and exits 0.
 *
 * Protocol notes
 *  - every complete line in the input buffer is processed in order and all
 *    replies produced by one read are written with one write(), so pipelined
 *    command groups get their replies in one segment;
 *  - DATA ends at CRLF "." CRLF, detected with a small matcher whose state
 *    survives buffer boundaries; the 250 reply after DATA reports
 *    "size=N" = message size after removing dot-stuffing;
 *  - BDAT n [LAST] consumes exactly n octets (RFC 3030);
 *  - AUTH PLAIN / LOGIN accept any credentials;
 *  - XSTAT (non-standard) replies with per-connection counters.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IBUF_SIZE (128 * 1024)      /* per-connection input buffer */
#define OBUF_HIGH (1024 * 1024)     /* stop processing input above this */
#define MAX_EVENTS 256
#define MAX_SIZE 104857600ULL
#define HOSTNAME "sink.local"

enum mode { M_CMD, M_DATA, M_BDAT, M_AUTH_PLAIN, M_AUTH_USER, M_AUTH_PASS };

typedef struct conn {
    int fd;
    enum mode mode;
    int ehlo, has_mail, nrcpt, authed, closing, discard, want_out, more;
    char *ibuf;
    size_t ilen;
    char *obuf;
    size_t olen, ooff, ocap;
    /* DATA matcher */
    int dm;
    unsigned long long draw, ddots;
    /* BDAT */
    unsigned long long bleft, btotal;
    int blast, bbad;
    /* per-connection counters */
    unsigned long long msgs, rcpts, bytes, last;
} conn;

static volatile sig_atomic_t g_stop = 0;
static unsigned long long g_conns, g_msgs, g_rcpts, g_rejects, g_bytes, g_cmds, g_maxconc, g_cur;

static void on_signal(int s) { (void)s; g_stop = 1; }

static void die(const char *what) { perror(what); exit(1); }

static void out(conn *c, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1;
    if (c->olen + (size_t)n > c->ocap) {
        size_t nc = c->ocap ? c->ocap : 4096;
        while (nc < c->olen + (size_t)n) nc *= 2;
        char *nb = realloc(c->obuf, nc);
        if (!nb) die("realloc");
        c->obuf = nb;
        c->ocap = nc;
    }
    memcpy(c->obuf + c->olen, tmp, (size_t)n);
    c->olen += (size_t)n;
}

static void reset_txn(conn *c) { c->has_mail = 0; c->nrcpt = 0; c->btotal = 0; }

/* case-insensitive prefix test */
static int iprefix(const char *s, size_t len, const char *p) {
    size_t pl = strlen(p);
    return len >= pl && strncasecmp(s, p, pl) == 0;
}

static int is_star(const char *l, size_t n) { return n == 1 && l[0] == '*'; }

static void finish_message(conn *c, unsigned long long size) {
    c->msgs++; g_msgs++;
    c->bytes += size; g_bytes += size;
    c->last = size;
    out(c, "250 2.0.0 Ok: queued as S%llu size=%llu\r\n", g_msgs, size);
    reset_txn(c);
}

static void bdat_done(conn *c) {
    c->mode = M_CMD;
    if (c->bbad) {
        out(c, c->has_mail ? "554 5.5.1 Error: no valid recipients\r\n"
                           : "503 5.5.1 Error: need MAIL command\r\n");
        c->btotal = 0;
        return;
    }
    if (c->blast) finish_message(c, c->btotal);
    else out(c, "250 2.0.0 Ok: %llu octets received\r\n", c->btotal);
}

static void handle_line(conn *c, const char *l, size_t n) {
    g_cmds++;
    switch (c->mode) {
    case M_AUTH_PLAIN:
    case M_AUTH_PASS:
        c->mode = M_CMD;
        if (is_star(l, n)) { out(c, "501 5.7.0 Authentication cancelled\r\n"); return; }
        c->authed = 1;
        out(c, "235 2.7.0 Authentication successful\r\n");
        return;
    case M_AUTH_USER:
        if (is_star(l, n)) { c->mode = M_CMD; out(c, "501 5.7.0 Authentication cancelled\r\n"); return; }
        c->mode = M_AUTH_PASS;
        out(c, "334 UGFzc3dvcmQ6\r\n");
        return;
    default:
        break;
    }
    size_t vl = 0;
    while (vl < n && l[vl] != ' ') vl++;
    const char *arg = l + vl;
    size_t an = n - vl;
    while (an && *arg == ' ') { arg++; an--; }
#define VERB(s) (vl == sizeof(s) - 1 && strncasecmp(l, s, vl) == 0)
    if (VERB("EHLO")) {
        if (!an) { out(c, "501 5.5.4 Syntax: EHLO hostname\r\n"); return; }
        reset_txn(c);
        c->ehlo = 1;
        out(c, "250-" HOSTNAME " greets %.*s\r\n", (int)(an > 200 ? 200 : an), arg);
        out(c, "250-PIPELINING\r\n250-SIZE 104857600\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
               "250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 AUTH PLAIN LOGIN\r\n");
    } else if (VERB("HELO")) {
        if (!an) { out(c, "501 5.5.4 Syntax: HELO hostname\r\n"); return; }
        reset_txn(c);
        c->ehlo = 1;
        out(c, "250 " HOSTNAME "\r\n");
    } else if (VERB("MAIL")) {
        if (!c->ehlo) { out(c, "503 5.5.1 Error: send HELO/EHLO first\r\n"); return; }
        if (!iprefix(arg, an, "FROM:")) { out(c, "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"); return; }
        if (c->has_mail) { out(c, "503 5.5.1 Error: nested MAIL command\r\n"); return; }
        /* SIZE= parameter */
        for (size_t i = 0; i + 5 <= an; i++) {
            if ((i == 0 || arg[i - 1] == ' ') && strncasecmp(arg + i, "SIZE=", 5) == 0) {
                unsigned long long sz = strtoull(arg + i + 5, NULL, 10);
                if (sz > MAX_SIZE) { out(c, "552 5.3.4 Message size exceeds fixed limit\r\n"); return; }
            }
        }
        c->has_mail = 1;
        c->nrcpt = 0;
        c->btotal = 0;
        out(c, "250 2.1.0 Ok\r\n");
    } else if (VERB("RCPT")) {
        if (!iprefix(arg, an, "TO:")) { out(c, "501 5.5.4 Syntax: RCPT TO:<address>\r\n"); return; }
        if (!c->has_mail) { out(c, "503 5.5.1 Error: need MAIL command\r\n"); return; }
        const char *a = arg + 3;
        size_t aa = an - 3;
        while (aa && *a == ' ') { a++; aa--; }
        if (aa && *a == '<') { a++; aa--; }
        g_rcpts++;
        if (iprefix(a, aa, "reject")) {
            g_rejects++;
            out(c, "550 5.1.1 Recipient address rejected: User unknown\r\n");
            return;
        }
        c->nrcpt++;
        c->rcpts++;
        out(c, "250 2.1.5 Ok\r\n");
    } else if (VERB("DATA")) {
        if (!c->has_mail) { out(c, "503 5.5.1 Error: need MAIL command\r\n"); return; }
        if (!c->nrcpt) { out(c, "554 5.5.1 Error: no valid recipients\r\n"); return; }
        c->mode = M_DATA;
        c->dm = 2; /* start of data counts as "just after CRLF" */
        c->draw = 0;
        c->ddots = 0;
        out(c, "354 End data with <CR><LF>.<CR><LF>\r\n");
    } else if (VERB("BDAT")) {
        char *end = NULL;
        if (!an || *arg < '0' || *arg > '9') { out(c, "501 5.5.4 Syntax: BDAT size [LAST]\r\n"); return; }
        unsigned long long sz = strtoull(arg, &end, 10);
        size_t rest = an - (size_t)(end - arg);
        while (rest && *end == ' ') { end++; rest--; }
        int last = 0;
        if (rest) {
            if (rest == 4 && strncasecmp(end, "LAST", 4) == 0) last = 1;
            else { out(c, "501 5.5.4 Syntax: BDAT size [LAST]\r\n"); return; }
        }
        c->bleft = sz;
        c->blast = last;
        c->bbad = !c->has_mail || !c->nrcpt;
        if (!c->bbad) c->btotal += sz;
        c->mode = M_BDAT;
        if (sz == 0) bdat_done(c);
    } else if (VERB("RSET")) {
        reset_txn(c);
        out(c, "250 2.0.0 Ok\r\n");
    } else if (VERB("NOOP")) {
        out(c, "250 2.0.0 Ok\r\n");
    } else if (VERB("QUIT")) {
        out(c, "221 2.0.0 Bye\r\n");
        c->closing = 1;
    } else if (VERB("AUTH")) {
        if (c->authed) { out(c, "503 5.5.1 Error: already authenticated\r\n"); return; }
        if (c->has_mail) { out(c, "503 5.5.1 Error: MAIL transaction in progress\r\n"); return; }
        size_t ml = 0;
        while (ml < an && arg[ml] != ' ') ml++;
        const char *ir = arg + ml;
        size_t irn = an - ml;
        while (irn && *ir == ' ') { ir++; irn--; }
        if (ml == 5 && strncasecmp(arg, "PLAIN", 5) == 0) {
            if (irn) { c->authed = 1; out(c, "235 2.7.0 Authentication successful\r\n"); }
            else { c->mode = M_AUTH_PLAIN; out(c, "334 \r\n"); }
        } else if (ml == 5 && strncasecmp(arg, "LOGIN", 5) == 0) {
            if (irn) { c->mode = M_AUTH_PASS; out(c, "334 UGFzc3dvcmQ6\r\n"); }
            else { c->mode = M_AUTH_USER; out(c, "334 VXNlcm5hbWU6\r\n"); }
        } else {
            out(c, "504 5.5.4 Unrecognized authentication type\r\n");
        }
    } else if (VERB("VRFY")) {
        out(c, "252 2.0.0 Cannot VRFY user\r\n");
    } else if (VERB("STARTTLS")) {
        out(c, "454 4.7.0 TLS not available\r\n");
    } else if (VERB("HELP")) {
        out(c, "214 2.0.0 smtp_sink\r\n");
    } else if (VERB("XSTAT")) {
        out(c, "250 msgs=%llu rcpts=%llu bytes=%llu last=%llu\r\n", c->msgs, c->rcpts, c->bytes, c->last);
    } else {
        out(c, "500 5.5.2 Error: command not recognized\r\n");
    }
#undef VERB
}

/* Scan DATA payload; returns bytes consumed (stops right after the end mark). */
static size_t data_scan(conn *c, const char *p, size_t n) {
    static const char END[5] = {'\r', '\n', '.', '\r', '\n'};
    size_t i = 0;
    int m = c->dm;
    while (i < n) {
        if (m == 0) {
            const char *cr = memchr(p + i, '\r', n - i);
            if (!cr) { i = n; break; }
            i = (size_t)(cr - p) + 1;
            m = 1;
            continue;
        }
        char ch = p[i++];
        if (ch == END[m]) {
            m++;
            if (m == 3) c->ddots++;
            if (m == 5) {
                c->draw += i;
                c->mode = M_CMD;
                c->dm = 0;
                /* draw includes ".\r\n"; every "\r\n." but the last was a stuffed dot */
                finish_message(c, c->draw - 3 - (c->ddots - 1));
                return i;
            }
        } else {
            m = (ch == '\r') ? 1 : 0;
        }
    }
    c->dm = m;
    c->draw += i;
    return i;
}

/* Handle everything complete in the input buffer.  Sets c->more when it
 * stopped early because too much output is queued. */
static void process(conn *c) {
    size_t pos = 0;
    int nolf = 0;
    c->more = 0;
    while (pos < c->ilen && !c->closing) {
        if (c->olen - c->ooff >= OBUF_HIGH) { c->more = 1; break; }
        char *p = c->ibuf + pos;
        size_t avail = c->ilen - pos;
        if (c->mode == M_DATA) {
            pos += data_scan(c, p, avail);
            continue;
        }
        if (c->mode == M_BDAT) {
            size_t take = c->bleft < avail ? (size_t)c->bleft : avail;
            c->bleft -= take;
            pos += take;
            if (c->bleft == 0) bdat_done(c);
            continue;
        }
        char *lf = memchr(p, '\n', avail);
        if (!lf) { nolf = 1; break; }
        size_t ll = (size_t)(lf - p) + 1;
        pos += ll;
        if (c->discard) {
            c->discard = 0;
            out(c, "500 5.5.2 Error: line too long\r\n");
            continue;
        }
        size_t n = ll - 1;
        if (n && p[n - 1] == '\r') n--;
        handle_line(c, p, n);
    }
    if (pos) {
        memmove(c->ibuf, c->ibuf + pos, c->ilen - pos);
        c->ilen -= pos;
    }
    if (nolf && c->ilen == IBUF_SIZE) {
        c->discard = 1; /* a "line" longer than the buffer: drop it */
        c->ilen = 0;
    }
}

/* 1 = all flushed, 0 = would block, -1 = error */
static int flush_out(conn *c) {
    while (c->ooff < c->olen) {
        ssize_t w = write(c->fd, c->obuf + c->ooff, c->olen - c->ooff);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            return -1;
        }
        c->ooff += (size_t)w;
    }
    c->ooff = c->olen = 0;
    return 1;
}

static void close_conn(int ep, conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->ibuf);
    free(c->obuf);
    free(c);
    g_cur--;
}

static void set_interest(int ep, conn *c, int want_out) {
    if (c->want_out == want_out) return;
    struct epoll_event ev = {.events = want_out ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl mod");
    c->want_out = want_out;
}

/* after processing: flush, then pick the interest set; returns 0 if conn closed */
static int settle(int ep, conn *c) {
    for (;;) {
        int r = flush_out(c);
        if (r < 0) { close_conn(ep, c); return 0; }
        if (r == 0) { set_interest(ep, c, 1); return 1; }
        if (c->closing) { close_conn(ep, c); return 0; }
        if (!c->more) break;
        process(c); /* input left over because output was over the high mark */
    }
    set_interest(ep, c, 0);
    return 1;
}

int main(int argc, char **argv) {
    const char *bind_addr = "127.0.0.1";
    int port = -1;
    double max_seconds = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-b") && i + 1 < argc) bind_addr = argv[++i];
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) max_seconds = atof(argv[++i]);
        else if (port < 0) port = atoi(argv[i]);
        else { fprintf(stderr, "usage: %s [-b ADDR] [-t MAX_SECONDS] PORT\n", argv[0]); return 2; }
    }
    if (port < 0 || port > 65535) { fprintf(stderr, "usage: %s [-b ADDR] [-t MAX_SECONDS] PORT\n", argv[0]); return 2; }
    struct timespec t_start;
    clock_gettime(CLOCK_MONOTONIC, &t_start);

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ls < 0) die("socket");
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, bind_addr, &sin.sin_addr) != 1) { fprintf(stderr, "bad address %s\n", bind_addr); return 2; }
    if (bind(ls, (struct sockaddr *)&sin, sizeof sin) < 0) die("bind");
    if (listen(ls, 1024) < 0) die("listen");
    socklen_t sl = sizeof sin;
    getsockname(ls, (struct sockaddr *)&sin, &sl);
    printf("LISTENING %d\n", ntohs(sin.sin_port));
    fflush(stdout);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev) < 0) die("epoll_ctl add");

    struct epoll_event evs[MAX_EVENTS];
    while (!g_stop) {
        if (max_seconds > 0) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if ((double)(now.tv_sec - t_start.tv_sec) + (now.tv_nsec - t_start.tv_nsec) / 1e9 > max_seconds) {
                fprintf(stderr, "smtp_sink: -t %g reached, exiting\n", max_seconds);
                break;
            }
        }
        int ne = epoll_wait(ep, evs, MAX_EVENTS, 1000);
        if (ne < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < ne; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) { /* listener */
                for (;;) {
                    int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn *nc = calloc(1, sizeof *nc);
                    if (!nc || !(nc->ibuf = malloc(IBUF_SIZE))) die("malloc");
                    nc->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl add conn");
                    g_conns++;
                    if (++g_cur > g_maxconc) g_maxconc = g_cur;
                    out(nc, "220 " HOSTNAME " ESMTP smtp_sink\r\n");
                    settle(ep, nc);
                }
                continue;
            }
            if (c->want_out) {
                if (evs[i].events & (EPOLLERR | EPOLLHUP) && !(evs[i].events & EPOLLOUT)) { close_conn(ep, c); continue; }
                int r = flush_out(c);
                if (r < 0) { close_conn(ep, c); continue; }
                if (r == 0) continue;
                if (c->closing) { close_conn(ep, c); continue; }
                process(c); /* input left over while we were blocked on output */
                settle(ep, c);
                continue;
            }
            if (c->ilen >= IBUF_SIZE) { /* cannot happen: process() always makes room */
                close_conn(ep, c);
                continue;
            }
            ssize_t rd = read(c->fd, c->ibuf + c->ilen, IBUF_SIZE - c->ilen);
            if (rd < 0) {
                if (errno == EAGAIN || errno == EINTR) continue;
                close_conn(ep, c);
                continue;
            }
            if (rd == 0) { close_conn(ep, c); continue; }
            c->ilen += (size_t)rd;
            process(c);
            settle(ep, c);
        }
    }
    printf("STATS conns=%llu max_concurrent=%llu msgs=%llu rcpts=%llu rejected=%llu bytes=%llu lines=%llu\n",
           g_conns, g_maxconc, g_msgs, g_rcpts, g_rejects, g_bytes, g_cmds);
    fflush(stdout);
    return 0;
}
