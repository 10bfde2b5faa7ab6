/*
 * The client and the backend of `make bench-stream` (bench/stream.py): TLS
 * ClientHellos sent to an nginx stream server that passes them through,
 * without TLS anywhere, so that what is measured is the proxy and not a
 * handshake.  Loopback only; every loop is bounded.
 *
 *   stream_load serve [-t SECONDS] PORT:TAG ...
 *       The backend: on 127.0.0.1:PORT, reads one whole TLS record (the
 *       ClientHello nginx forwards), answers "TAG\n" and closes.  Exits on
 *       SIGTERM or SIGINT, or after SECONDS (3600).
 *
 *   stream_load load -p PORT -f HELLOS [-e ANSWERS] [-c CONNS] [-d SECONDS]
 *                    [-n COUNT]
 *       The client: CONNS connections at a time to 127.0.0.1:PORT, each
 *       sends the next ClientHello of HELLOS (TLS records one after
 *       another, used in turn), reads the answer to the end and closes with
 *       a reset (SO_LINGER 0: no TIME_WAIT on the client's ports).  With
 *       ANSWERS (one line per hello) an answer must be that line.  Stops
 *       after SECONDS (10) or COUNT completed connections, whichever comes
 *       first; prints one line: connections=N errors=E seconds=S
 *       p50_us=X p99_us=Y.
 *
 *   stream_load check -p PORT -f HELLOS
 *       One connection per hello, in order: prints each answer (or
 *       "error: ...") on a line of its own.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_HELLOS   1024
#define MAX_ANSWER   64
#define MAX_CONNS    1024
#define CONN_TIMEOUT 5.0
#define HIST_US      1000000   /* latencies up to 1 s, by microsecond */

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
    (void) sig;
    stop = 1;
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die(const char *what)
{
    perror(what);
    exit(2);
}

static int
nonblocking(int fd)
{
    return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static struct sockaddr_in
loopback(int port)
{
    struct sockaddr_in sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sin;
}


/* ---- the backend ------------------------------------------------------ */

typedef struct {
    int            tag;     /* index of the listener's tag, -1: listener */
    size_t         got;
    unsigned char  head[5];
} peer_t;

static int
serve(int argc, char **argv)
{
    int                 ep, i, n, fd, nl = 0;
    double              limit = 3600, end;
    char               *tags[64];
    peer_t             *peers;
    struct epoll_event  ev, evs[256];

    if (argc > 1 && strcmp(argv[0], "-t") == 0) {
        limit = atof(argv[1]);
        argc -= 2;
        argv += 2;
    }

    peers = calloc(65536, sizeof(peer_t));
    ep = epoll_create1(0);
    if (peers == NULL || ep < 0) {
        die("serve");
    }

    for (i = 0; i < argc && nl < 64; i++) {
        struct sockaddr_in  sin;
        char               *colon = strchr(argv[i], ':');
        int                 one = 1;

        if (colon == NULL) {
            fprintf(stderr, "serve: PORT:TAG, not \"%s\"\n", argv[i]);
            return 2;
        }
        *colon = '\0';
        sin = loopback(atoi(argv[i]));
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || fd >= 65536
            || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one))
            || bind(fd, (struct sockaddr *) &sin, sizeof(sin))
            || listen(fd, 4096) || nonblocking(fd))
        {
            die("serve: listen");
        }
        tags[nl] = colon + 1;
        peers[fd].tag = -1 - nl;   /* a listener: its tag is -1 - tag */
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        nl++;
    }

    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    end = now() + limit;

    while (!stop && now() < end) {
        n = epoll_wait(ep, evs, 256, 200);

        for (i = 0; i < n; i++) {
            peer_t  *p;

            fd = evs[i].data.fd;
            p = &peers[fd];

            if (p->tag < 0) {                     /* accept what is there */
                int  lt = -1 - p->tag, c, k;

                for (k = 0; k < 64; k++) {
                    c = accept4(fd, NULL, NULL, SOCK_NONBLOCK);
                    if (c < 0) {
                        break;
                    }
                    if (c >= 65536) {
                        close(c);
                        continue;
                    }
                    peers[c].tag = lt;
                    peers[c].got = 0;
                    ev.events = EPOLLIN;
                    ev.data.fd = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                }
                continue;
            }

            for ( ;; ) {                     /* read the record, answer */
                unsigned char  buf[4096];
                size_t         need;
                ssize_t        r;

                r = read(fd, buf, sizeof(buf));
                if (r < 0 && errno == EAGAIN) {
                    break;
                }
                if (r <= 0) {
                    close(fd);
                    break;
                }
                for (ssize_t k = 0; k < r && p->got + (size_t) k < 5; k++) {
                    p->head[p->got + (size_t) k] = buf[k];
                }
                p->got += (size_t) r;
                if (p->got < 5) {
                    continue;
                }
                need = 5 + ((size_t) p->head[3] << 8 | p->head[4]);
                if (p->got < need) {
                    continue;
                }
                {
                    char    out[80];
                    int     len = snprintf(out, sizeof(out), "%s\n",
                                           tags[p->tag]);
                    ssize_t w = write(fd, out, (size_t) len);

                    (void) w;
                }
                close(fd);
                break;
            }
        }
    }

    return 0;
}


/* ---- the client ------------------------------------------------------- */

typedef struct {
    const unsigned char *data;
    size_t               len;
    char                 answer[MAX_ANSWER];
    size_t               answer_len;
} hello_t;

typedef struct {
    int      fd;             /* -1: free */
    int      hello;
    int      sent;
    double   start;
    size_t   got;
    char     buf[MAX_ANSWER];
} conn_t;

static hello_t  hellos[MAX_HELLOS];
static int      nhellos;

static void
read_hellos(const char *path, const char *answers)
{
    FILE           *f;
    long            size;
    size_t          off = 0;
    unsigned char  *all;

    f = fopen(path, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) || (size = ftell(f)) <= 0
        || fseek(f, 0, SEEK_SET))
    {
        die(path);
    }
    all = malloc((size_t) size);
    if (all == NULL || fread(all, 1, (size_t) size, f) != (size_t) size) {
        die(path);
    }
    fclose(f);

    while (off + 5 <= (size_t) size && nhellos < MAX_HELLOS) {
        size_t  len = 5 + ((size_t) all[off + 3] << 8 | all[off + 4]);

        if (off + len > (size_t) size) {
            fprintf(stderr, "%s: a record is cut short\n", path);
            exit(2);
        }
        hellos[nhellos].data = all + off;
        hellos[nhellos].len = len;
        nhellos++;
        off += len;
    }
    if (nhellos == 0) {
        fprintf(stderr, "%s: no record\n", path);
        exit(2);
    }

    if (answers) {
        char  line[MAX_ANSWER];
        int   i = 0;

        f = fopen(answers, "r");
        if (f == NULL) {
            die(answers);
        }
        while (i < nhellos && fgets(line, sizeof(line) - 1, f)) {
            strcpy(hellos[i].answer, line);
            hellos[i].answer_len = strlen(line);
            i++;
        }
        fclose(f);
        if (i != nhellos) {
            fprintf(stderr, "%s: %d answers for %d hellos\n", answers, i,
                    nhellos);
            exit(2);
        }
    }
}

static int
open_conn(int ep, conn_t *c, int port, int hello)
{
    struct sockaddr_in  sin = loopback(port);
    struct epoll_event  ev;
    int                 one = 1;

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->hello = hello;
    c->sent = 0;
    c->got = 0;
    c->start = now();
    if (connect(c->fd, (struct sockaddr *) &sin, sizeof(sin)) < 0
        && errno != EINPROGRESS)
    {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    return 0;
}

static void
close_conn(conn_t *c)
{
    struct linger  l = { 1, 0 };   /* a reset: no TIME_WAIT here */

    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(c->fd);
    c->fd = -1;
}

/*
 * Drives one connection on an event: 1 done and answered as expected, -1
 * failed, 0 not yet.
 */
static int
step(int ep, conn_t *c, int check_answer)
{
    hello_t  *h = &hellos[c->hello];

    if (!c->sent) {
        int        err = 0;
        socklen_t  len = sizeof(err);
        ssize_t    w;
        struct epoll_event  ev;

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
            return -1;
        }
        w = send(c->fd, h->data, h->len, MSG_NOSIGNAL);
        if (w < 0 && errno == EAGAIN) {
            return 0;
        }
        if (w != (ssize_t) h->len) {   /* a few hundred bytes: at once */
            return -1;
        }
        c->sent = 1;
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        return 0;
    }

    for ( ;; ) {
        char     buf[4096];
        ssize_t  r = read(c->fd, buf, sizeof(buf));

        if (r < 0 && errno == EAGAIN) {
            return 0;
        }
        if (r < 0) {
            return -1;
        }
        if (r == 0) {
            if (c->got == 0) {
                return -1;
            }
            if (check_answer && (c->got != h->answer_len
                                 || memcmp(c->buf, h->answer, c->got)))
            {
                return -1;
            }
            return 1;
        }
        if (c->got + (size_t) r > MAX_ANSWER - 1) {
            return -1;
        }
        memcpy(c->buf + c->got, buf, (size_t) r);
        c->got += (size_t) r;
    }
}

static int
load(int argc, char **argv)
{
    int                 port = 0, conns = 32, ep, i, n, opt, next = 0;
    long                count = 0, started = 0, done = 0, errors = 0;
    double              duration = 10, t0, end, last_scan, elapsed;
    const char         *path = NULL, *answers = NULL;
    unsigned           *hist;
    conn_t             *cs;
    struct epoll_event  evs[MAX_CONNS];

    while ((opt = getopt(argc, argv, "p:f:e:c:d:n:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'f': path = optarg; break;
        case 'e': answers = optarg; break;
        case 'c': conns = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'n': count = atol(optarg); break;
        default: return 2;
        }
    }
    if (port <= 0 || path == NULL || conns < 1 || conns > MAX_CONNS) {
        fprintf(stderr, "load: -p PORT -f HELLOS [-e ANSWERS] [-c 1..%d] "
                "[-d SECONDS] [-n COUNT]\n", MAX_CONNS);
        return 2;
    }
    if (count > 0 && conns > count) {
        conns = (int) count;
    }
    read_hellos(path, answers);

    hist = calloc(HIST_US + 1, sizeof(unsigned));
    cs = calloc((size_t) conns, sizeof(conn_t));
    ep = epoll_create1(0);
    if (hist == NULL || cs == NULL || ep < 0) {
        die("load");
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    t0 = now();
    end = t0 + duration;
    last_scan = t0;

    for (i = 0; i < conns; i++) {
        cs[i].fd = -1;
        if (open_conn(ep, &cs[i], port, next) == 0) {
            started++;
        } else {
            errors++;
        }
        next = (next + 1) % nhellos;
    }

    while (!stop && (count == 0 || done < count)) {
        double  t = now();

        if (t >= end) {
            break;
        }
        n = epoll_wait(ep, evs, MAX_CONNS, 100);
        t = now();

        for (i = 0; i < n; i++) {
            conn_t  *c = evs[i].data.ptr;
            int      r = step(ep, c, answers != NULL);

            if (r == 0) {
                continue;
            }
            if (r > 0) {
                long  us = (long) ((t - c->start) * 1e6);

                hist[us < HIST_US ? us : HIST_US]++;
                done++;
            } else {
                errors++;
            }
            close_conn(c);
            if (count == 0 || started < count) {
                if (open_conn(ep, c, port, next) == 0) {
                    started++;
                } else {
                    errors++;
                }
                next = (next + 1) % nhellos;
            }
        }

        if (t - last_scan > 0.1) {               /* connections too slow */
            last_scan = t;
            for (i = 0; i < conns; i++) {
                if (cs[i].fd >= 0 && t - cs[i].start > CONN_TIMEOUT) {
                    errors++;
                    close_conn(&cs[i]);
                    if (count == 0 || started < count) {
                        if (open_conn(ep, &cs[i], port, next) == 0) {
                            started++;
                        }
                        next = (next + 1) % nhellos;
                    }
                }
            }
        }

        if (count > 0 && done + errors >= count) {
            break;
        }
    }

    elapsed = now() - t0;
    for (i = 0; i < conns; i++) {
        if (cs[i].fd >= 0) {
            close_conn(&cs[i]);
        }
    }

    {
        long  seen = 0, p50 = -1, p99 = -1;

        for (i = 0; i <= HIST_US; i++) {
            seen += hist[i];
            if (p50 < 0 && seen * 2 >= done && done > 0) {
                p50 = i;
            }
            if (p99 < 0 && seen * 100 >= done * 99 && done > 0) {
                p99 = i;
            }
        }
        printf("connections=%ld errors=%ld seconds=%.3f p50_us=%ld "
               "p99_us=%ld\n", done, errors, elapsed, p50, p99);
    }
    return 0;
}

static int
check(int argc, char **argv)
{
    int         port = 0, i, opt;
    const char *path = NULL;

    while ((opt = getopt(argc, argv, "p:f:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'f': path = optarg; break;
        default: return 2;
        }
    }
    if (port <= 0 || path == NULL) {
        fprintf(stderr, "check: -p PORT -f HELLOS\n");
        return 2;
    }
    read_hellos(path, NULL);

    for (i = 0; i < nhellos; i++) {
        int                 fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in  sin = loopback(port);
        struct timeval      tv = { 5, 0 };
        char                buf[MAX_ANSWER];
        size_t              got = 0;
        ssize_t             r;

        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) < 0
            || send(fd, hellos[i].data, hellos[i].len, MSG_NOSIGNAL)
               != (ssize_t) hellos[i].len)
        {
            printf("error: %s\n", strerror(errno));
            close(fd);
            continue;
        }
        while (got < sizeof(buf) - 1
               && (r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
        {
            got += (size_t) r;
        }
        buf[got] = '\0';
        if (got == 0) {
            printf("error: closed without an answer\n");
        } else {
            printf("%s%s", buf, buf[got - 1] == '\n' ? "" : "\n");
        }
        close(fd);
    }
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "serve") == 0) {
        return serve(argc - 2, argv + 2);
    }
    if (argc >= 2 && strcmp(argv[1], "load") == 0) {
        return load(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "check") == 0) {
        return check(argc - 1, argv + 1);
    }
    fprintf(stderr, "usage: stream_load serve|load|check ... "
            "(see the comment at the top of stream_load.c)\n");
    return 2;
}
