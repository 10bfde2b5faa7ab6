/*
 * dynroute_health_check: each worker of the current configuration probes
 * the servers whose id modulo worker_processes is its number, through
 * nginx's event loop (ngx_event_connect_peer, timers), and keeps each
 * server's health in its cell in the zone, where every worker's pick reads
 * it (src/core/balance.hpp).
 *
 * A tick per group scans the list in use (refreshed from the zone first,
 * so that runtime servers are probed as soon as they are listed): a server
 * is due when the interval has passed since its last probe, the time kept
 * in its cell, so that a reload or a restart of the workers probes no
 * server earlier than it would have been; a server never probed is due at
 * a point of the first interval of its own (by its id), so that the
 * probes of a group are spread.  A probe's outcome is stored with one
 * compare-and-swap of the health word.  A worker that is exiting starts
 * no probe.
 *
 * Nothing here blocks, and a probe allocates nothing: each server's probe
 * is made once, by slot, and reused.
 */

#include <new>

#include "ngx_http_dynroute_health_check.hpp"
#include "ngx_http_dynroute_servers.hpp"
#include "ngx_http_dynroute_live.hpp"
#include "ngx_http_dynroute_conf.hpp"
#include "ngx_http_dynroute_atomic.hpp"
#include "health_check.hpp"
#include "metrics.hpp"
#include "text.hpp"


namespace hc = dynroute::health;
namespace mx = dynroute::metrics;


#define NGX_HTTP_DYNROUTE_HC_REQUEST  (1024 + NGX_SOCKADDR_STRLEN + 128)


struct ngx_http_dynroute_hc_s;

typedef struct {
    struct ngx_http_dynroute_hc_s *hc;
    uint32_t                   id;
    uint32_t                   slot;
    uint64_t                  *cell;
    unsigned                   active:1;
    ngx_peer_connection_t      pc;
    ngx_str_t                  name;
    ngx_sockaddr_t             sockaddr;
    size_t                     len;
    size_t                     sent;
    hc::Judge                  judge;
    u_char                     request[NGX_HTTP_DYNROUTE_HC_REQUEST];
    u_char                     text[NGX_SOCKADDR_STRLEN];
} ngx_http_dynroute_hc_probe_t;


typedef struct ngx_http_dynroute_hc_s {
    hc::Params                    *params;
    ngx_http_dynroute_members_t   *members;
    ngx_str_t                     *upstream;
    u_char                        *file;
    ngx_uint_t                     line;

    /* per worker */
    ngx_http_dynroute_main_conf_t *dmcf;
    ngx_event_t                    tick;
    ngx_msec_t                     every;
    uint64_t                       started_ms;
    ngx_uint_t                     workers;
    ngx_uint_t                     worker;
    ngx_http_dynroute_hc_probe_t **probes;    /* by slot, nslots */
} ngx_http_dynroute_hc_t;


static void ngx_http_dynroute_hc_tick(ngx_event_t *ev) noexcept;
static void ngx_http_dynroute_hc_write(ngx_event_t *ev) noexcept;
static void ngx_http_dynroute_hc_read(ngx_event_t *ev) noexcept;
static void ngx_http_dynroute_hc_done(ngx_http_dynroute_hc_probe_t *pr,
    bool passed, const char *why) noexcept;


static uint64_t
ngx_http_dynroute_hc_now_ms() noexcept
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return static_cast<uint64_t>(tp->sec) * 1000 + tp->msec;
}


/* "dynroute_health_check [interval=T] ...;" in an upstream{} */

char *
ngx_http_dynroute_health_check(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept
{
    ngx_str_t                     *value;
    ngx_uint_t                     i;
    ngx_http_dynroute_hc_t        *h;
    ngx_http_upstream_srv_conf_t  *uscf;
    ngx_http_dynroute_members_t   *m;

    uscf = static_cast<ngx_http_upstream_srv_conf_t *>(
               ngx_http_conf_get_module_srv_conf(cf,
                                                 ngx_http_upstream_module));

    m = ngx_http_dynroute_servers_members_of(uscf);

    if (m == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "dynroute_health_check in upstream \"%V\" "
                           "without dynroute_servers: the health is kept "
                           "in the servers' cells, which only such groups "
                           "have; write \"dynroute_servers;\" before it",
                           &uscf->host);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    if (m->health) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "dynroute_health_check is duplicate in upstream "
                           "\"%V\": write one line with all its parameters",
                           &uscf->host);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    h = static_cast<ngx_http_dynroute_hc_t *>(
            ngx_pcalloc(cf->pool, sizeof(ngx_http_dynroute_hc_t)));
    if (h == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    value = static_cast<ngx_str_t *>(cf->args->elts);

    try {
        std::vector<std::string_view> args;

        for (i = 1; i < cf->args->nelts; i++) {
            args.push_back(ngx_http_dynroute_view(value[i]));
        }

        hc::Params p = hc::parse(args);

        h->params = ngx_http_dynroute_conf_new<hc::Params>(
                        cf, "dynroute_health_check", std::move(p));
        if (h->params == NULL) {
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute_health_check");
    }

    h->members = m;
    h->upstream = &uscf->host;
    h->file = cf->conf_file->file.name.data;
    h->line = cf->conf_file->line;

    m->health = h;
    m->list[0].slow_start_ms = h->params->slow_start_ms;
    m->list[1].slow_start_ms = h->params->slow_start_ms;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_dynroute_health_check_init(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_uint_t                    i;
    ngx_http_dynroute_members_t  *m;

    for (i = 0; i < dmcf->servers.nelts; i++) {
        m = ngx_http_dynroute_servers_members(dmcf, i);

        if (m == NULL || m->health == NULL || dmcf->zone) {
            continue;
        }

        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "dynroute_health_check in upstream \"%V\" keeps the "
                      "servers' health in the dynroute_zone, and there is "
                      "none: add \"dynroute_zone NAME SIZE;\" to the http "
                      "block, in %s:%ui", m->health->upstream,
                      m->health->file, m->health->line);
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_dynroute_health_check_start(ngx_cycle_t *cycle,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_uint_t                    i;
    ngx_core_conf_t              *ccf;
    ngx_http_dynroute_hc_t       *h;
    ngx_http_dynroute_members_t  *m;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return;
    }

    ccf = reinterpret_cast<ngx_core_conf_t *>(
              ngx_get_conf(cycle->conf_ctx, ngx_core_module));

    for (i = 0; i < dmcf->servers.nelts; i++) {
        m = ngx_http_dynroute_servers_members(dmcf, i);

        if (m == NULL || m->health == NULL || dmcf->live == NULL) {
            continue;
        }

        h = m->health;

        h->probes = static_cast<ngx_http_dynroute_hc_probe_t **>(
                        ngx_pcalloc(cycle->pool,
                                    m->nslots * sizeof(void *)));
        if (h->probes == NULL) {
            return;
        }

        h->dmcf = dmcf;
        h->started_ms = ngx_http_dynroute_hc_now_ms();

        if (ngx_process == NGX_PROCESS_SINGLE) {
            h->workers = 1;
            h->worker = 0;

        } else {
            h->workers = ngx_max(ccf->worker_processes, 1);
            h->worker = ngx_worker;
        }

        /* a tick a tenth of the interval, 20 to 200 ms */

        h->every = static_cast<ngx_msec_t>(h->params->interval_ms / 10);
        h->every = ngx_min(ngx_max(h->every, 20), 200);

        h->tick.handler = ngx_http_dynroute_hc_tick;
        h->tick.data = h;
        h->tick.log = cycle->log;
        h->tick.cancelable = 1;

        ngx_add_timer(&h->tick, h->every);
    }
}


/* a probe of slot's server: connect, the request written, its timers */

static void
ngx_http_dynroute_hc_probe(ngx_http_dynroute_hc_t *h,
    ngx_http_dynroute_peer_t *slot, uint32_t idx, uint64_t now_ms) noexcept
{
    u_char                        *p, *last;
    ngx_int_t                      rc;
    ngx_str_t                      host;
    uint64_t                       old;
    hc::Health                     hh;
    ngx_connection_t              *c;
    ngx_http_dynroute_hc_probe_t  *pr;

    pr = h->probes[idx];

    if (pr == NULL) {
        /* the worker's cycle pool: freed when the worker exits */
        pr = static_cast<ngx_http_dynroute_hc_probe_t *>(
                 ngx_pcalloc(ngx_cycle->pool,
                             sizeof(ngx_http_dynroute_hc_probe_t)));
        if (pr == NULL) {
            return;
        }

        h->probes[idx] = pr;
    }

    /* the probe's time, in the cell first: no other worker starts one */

    old = __atomic_load_n(&slot->cell[mx::s_health], __ATOMIC_RELAXED);

    do {
        hh = hc::unpack(old);
        hh.last_probe_ms = now_ms;
    } while (!__atomic_compare_exchange_n(&slot->cell[mx::s_health], &old,
                                          hc::pack(hh), false,
                                          __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));

    new (&pr->judge) hc::Judge(*h->params);

    pr->hc = h;
    pr->id = slot->id;
    pr->slot = idx;
    pr->cell = slot->cell;
    pr->active = 1;
    pr->len = 0;
    pr->sent = 0;

    ngx_memcpy(&pr->sockaddr, &slot->sockaddr, slot->socklen);
    ngx_memcpy(pr->text, slot->name, slot->name_len);
    pr->name.data = pr->text;
    pr->name.len = slot->name_len;

    if (h->params->port && slot->sockaddr.sockaddr.sa_family != AF_UNIX) {
        ngx_inet_set_port(&pr->sockaddr.sockaddr,
                          static_cast<in_port_t>(h->params->port));
    }

    /* Host: the server's address; a unix socket's is no host name */

    if (slot->sockaddr.sockaddr.sa_family == AF_UNIX) {
        ngx_str_set(&host, "localhost");

    } else {
        host = pr->name;
    }

    p = pr->request;
    last = p + sizeof(pr->request);
    p = ngx_slprintf(p, last,
                     "GET %*s HTTP/1.0\r\n"
                     "Host: %V\r\n"
                     "User-Agent: dynroute-health-check\r\n"
                     "Connection: close\r\n\r\n",
                     h->params->uri.size(), h->params->uri.data(), &host);
    pr->len = p - pr->request;

    ngx_memzero(&pr->pc, sizeof(ngx_peer_connection_t));
    pr->pc.sockaddr = &pr->sockaddr.sockaddr;
    pr->pc.socklen = slot->socklen;
    pr->pc.name = &pr->name;
    pr->pc.get = ngx_event_get_peer;
    pr->pc.log = ngx_cycle->log;
    pr->pc.log_error = NGX_ERROR_INFO;
    pr->pc.tries = 1;

    rc = ngx_event_connect_peer(&pr->pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        ngx_http_dynroute_hc_done(pr, false, "connect() failed");
        return;
    }

    c = pr->pc.connection;
    c->data = pr;
    c->read->handler = ngx_http_dynroute_hc_read;
    c->write->handler = ngx_http_dynroute_hc_write;

    ngx_add_timer(c->write, h->params->timeout_ms);
    ngx_add_timer(c->read, h->params->timeout_ms);

    if (rc == NGX_OK) {
        ngx_http_dynroute_hc_write(c->write);
    }
}


static void
ngx_http_dynroute_hc_tick(ngx_event_t *ev) noexcept
{
    uint64_t                       now_ms, due;
    ngx_uint_t                     i, n;
    hc::Health                     hh;
    ngx_http_dynroute_hc_t        *h;
    ngx_http_dynroute_list_t      *list;
    ngx_http_dynroute_peer_t      *slot;
    ngx_http_dynroute_members_t   *m;
    ngx_http_dynroute_hc_probe_t  *pr;

    h = static_cast<ngx_http_dynroute_hc_t *>(ev->data);

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;                 /* the next configuration's workers probe */
    }

    m = h->members;

    /* the list in use brought up to date: runtime servers come and go */

    ngx_http_dynroute_live_sync(h->dmcf->live);

    list = &m->list[m->current];
    n = list->primaries + list->backups;
    now_ms = ngx_http_dynroute_hc_now_ms();

    for (i = 0; i < n; i++) {
        slot = &m->slots[list->entries[i].slot];

        if (slot->id == 0 || slot->cell == NULL
            || slot->id % h->workers != h->worker)
        {
            continue;
        }

        pr = h->probes[list->entries[i].slot];

        if (pr && pr->active) {
            continue;
        }

        hh = hc::unpack(__atomic_load_n(&slot->cell[mx::s_health],
                                        __ATOMIC_RELAXED));

        if (hh.last_probe_ms) {
            due = hh.last_probe_ms + h->params->interval_ms;

        } else {
            due = h->started_ms
                  + (slot->id * static_cast<uint64_t>(2654435761u))
                    % h->params->interval_ms;
        }

        if (now_ms >= due || hh.last_probe_ms > now_ms + 60000) {
            ngx_http_dynroute_hc_probe(h, slot, list->entries[i].slot,
                                       now_ms);
        }
    }

    ngx_add_timer(ev, h->every);
}


static void
ngx_http_dynroute_hc_write(ngx_event_t *wev) noexcept
{
    ssize_t                        n;
    ngx_connection_t              *c;
    ngx_http_dynroute_hc_probe_t  *pr;

    c = static_cast<ngx_connection_t *>(wev->data);
    pr = static_cast<ngx_http_dynroute_hc_probe_t *>(c->data);

    if (wev->timedout) {
        ngx_http_dynroute_hc_done(pr, false, "timed out");
        return;
    }

    if (pr->sent == pr->len) {
        return;                 /* written: waiting for the response */
    }

    while (pr->sent < pr->len) {
        n = c->send(c, pr->request + pr->sent, pr->len - pr->sent);

        if (n == NGX_ERROR) {
            ngx_http_dynroute_hc_done(pr, false,
                                      "could not connect or send");
            return;
        }

        if (n == NGX_AGAIN || n == 0) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_http_dynroute_hc_done(pr, false, "event error");
            }

            return;
        }

        pr->sent += n;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    ngx_http_dynroute_hc_read(c->read);
}


static void
ngx_http_dynroute_hc_read(ngx_event_t *rev) noexcept
{
    ssize_t                        n;
    hc::Judge::Verdict             v;
    ngx_connection_t              *c;
    ngx_http_dynroute_hc_probe_t  *pr;
    u_char                         buf[1024];

    c = static_cast<ngx_connection_t *>(rev->data);
    pr = static_cast<ngx_http_dynroute_hc_probe_t *>(c->data);

    if (rev->timedout) {
        ngx_http_dynroute_hc_done(pr, false, "timed out");
        return;
    }

    if (pr->sent < pr->len) {
        return;                 /* the write handler reads once written */
    }

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_http_dynroute_hc_done(pr, false, "event error");
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_dynroute_hc_done(pr, false, "reset or refused");
            return;
        }

        if (n == 0) {
            v = pr->judge.end();

        } else {
            v = pr->judge.feed(reinterpret_cast<char *>(buf),
                               static_cast<size_t>(n));
        }

        if (v != hc::Judge::Verdict::more) {
            ngx_http_dynroute_hc_done(pr, v == hc::Judge::Verdict::pass,
                                      pr->judge.why());
            return;
        }
    }
}


/* the probe's outcome into its server's cell, if the server is still
 * listed (its cell not retired, so not freed either) */

static void
ngx_http_dynroute_hc_done(ngx_http_dynroute_hc_probe_t *pr, bool passed,
    const char *why) noexcept
{
    uint64_t                      old, now_ms;
    hc::Step                      st;
    hc::Params                   *p;
    ngx_http_dynroute_hc_t       *h;
    ngx_http_dynroute_peer_t     *slot;

    h = pr->hc;
    p = h->params;

    if (pr->pc.connection) {
        ngx_close_connection(pr->pc.connection);
        pr->pc.connection = NULL;
    }

    pr->active = 0;

    ngx_http_dynroute_live_sync(h->dmcf->live);

    slot = ngx_http_dynroute_members_slot(h->members, pr->id);

    if (slot == NULL || slot->cell != pr->cell) {
        return;                 /* removed meanwhile */
    }

    now_ms = ngx_http_dynroute_hc_now_ms();
    old = __atomic_load_n(&pr->cell[mx::s_health], __ATOMIC_RELAXED);

    do {
        hc::Health cur = hc::unpack(old);
        st = hc::step(cur, passed, p->fails, p->passes, cur.last_probe_ms);
    } while (!__atomic_compare_exchange_n(&pr->cell[mx::s_health], &old,
                                          hc::pack(st.next), false,
                                          __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));

    if (st.came_up) {
        __atomic_store_n(&pr->cell[mx::s_up_since_ms], now_ms,
                         __ATOMIC_RELAXED);
    }

    ngx_http_dynroute_count(&pr->cell[mx::s_checks]);

    if (!passed) {
        ngx_http_dynroute_count(&pr->cell[mx::s_check_failures]);
    }

    if (st.changed) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "dynroute_health_check: server %V of upstream \"%V\" "
                      "is %s%s%s", &pr->name, h->upstream,
                      hc::state_name(st.next.state), passed ? "" : ": ",
                      passed ? "" : why);

    } else if (!passed) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "dynroute_health_check: probe of server %V of "
                      "upstream \"%V\" failed: %s", &pr->name, h->upstream,
                      why);
    }
}
