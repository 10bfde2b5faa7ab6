/*
 * dynroute_balancer: an upstream{} that hands each request to the
 * upstream{} that dynroute chose for it, as an object.  proxy_pass (or
 * grpc_pass, fastcgi_pass, uwsgi_pass, scgi_pass) names this upstream; at
 * request time its peer initialisation runs the chosen upstream's own, so
 * that its servers, keepalive, zone, balancing method, max_fails, backup and
 * down behave as with a static proxy_pass to it.  No variable, no URL
 * parsing, no search by name: the targets were resolved to upstream{}
 * blocks when the configuration was read.
 *
 * With fallback=primary, a rollout's request that the chosen variant never
 * received -- its upstream has no live peer, or refused the connection, or
 * did not accept it in time -- goes to the rollout's primary within the
 * same upstream attempt.  A request the variant did receive (some of it
 * was sent on the connection) is not sent again to the primary, unless
 * resend=on; even then only where nginx itself asks for another peer, so
 * that proxy_next_upstream's rules (non_idempotent among them) hold.
 */

#include "ngx_http_dynroute_balancer.hpp"
#include "ngx_http_dynroute_decision.hpp"


typedef struct {
    ngx_flag_t                       fallback;   /* fallback=primary */
    ngx_flag_t                       resend;     /* resend=on */
} ngx_http_dynroute_balancer_conf_t;


/* Per request, only for a rollout with a primary to fall back to. */
typedef struct {
    ngx_http_request_t              *request;
    ngx_http_upstream_srv_conf_t    *primary;    /* NULL once fallen back */
    void                            *data;       /* the chosen upstream's */
    ngx_event_get_peer_pt            get;
    ngx_event_free_peer_pt           free;
    ngx_event_notify_peer_pt         notify;
#if (NGX_HTTP_SSL)
    ngx_event_set_peer_session_pt    set_session;
    ngx_event_save_peer_session_pt   save_session;
#endif
    ngx_uint_t                       tries;      /* get() calls */
    unsigned                         failed:1;
    unsigned                         sent:1;     /* the failed try had
                                                    sent the request */
    unsigned                         resend:1;   /* resend=on */
} ngx_http_dynroute_balancer_peer_t;


static ngx_int_t ngx_http_dynroute_balancer_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us) noexcept;
static ngx_int_t ngx_http_dynroute_balancer_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us) noexcept;
static ngx_int_t ngx_http_dynroute_balancer_get(ngx_peer_connection_t *pc,
    void *data) noexcept;
static void ngx_http_dynroute_balancer_free(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state) noexcept;
static void ngx_http_dynroute_balancer_notify(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t type) noexcept;
#if (NGX_HTTP_SSL)
static ngx_int_t ngx_http_dynroute_balancer_set_session(
    ngx_peer_connection_t *pc, void *data) noexcept;
static void ngx_http_dynroute_balancer_save_session(ngx_peer_connection_t *pc,
    void *data) noexcept;
#endif


/* "dynroute_balancer [fallback=primary [resend=on]];" in an upstream{} */

char *
ngx_http_dynroute_balancer(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_str_t                           *value;
    ngx_http_upstream_srv_conf_t        *uscf, **up;
    ngx_http_dynroute_main_conf_t       *dmcf;
    ngx_http_dynroute_balancer_conf_t   *bcf;

    uscf = static_cast<ngx_http_upstream_srv_conf_t *>(
               ngx_http_conf_get_module_srv_conf(cf,
                                                 ngx_http_upstream_module));

    if (uscf->peer.init_upstream == ngx_http_dynroute_balancer_init_upstream) {
        return const_cast<char *>("is duplicate");
    }

    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "dynroute_balancer cannot be combined with "
                           "another balancing method in upstream \"%V\"",
                           &uscf->host);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    bcf = static_cast<ngx_http_dynroute_balancer_conf_t *>(
              ngx_pcalloc(cf->pool, sizeof(ngx_http_dynroute_balancer_conf_t)));
    if (bcf == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    value = static_cast<ngx_str_t *>(cf->args->elts);

    for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
        if (ngx_http_dynroute_is(value[i], "fallback=primary")) {
            bcf->fallback = 1;

        } else if (ngx_http_dynroute_is(value[i], "resend=on")) {
            bcf->resend = 1;

        } else if (ngx_http_dynroute_is(value[i], "resend=off")) {
            bcf->resend = 0;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\": expected "
                               "fallback=primary or resend=on|off",
                               &value[i]);
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }
    }

    if (bcf->resend && !bcf->fallback) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "resend=on of dynroute_balancer says what "
                           "fallback=primary may send again: add "
                           "fallback=primary");
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    uscf->peer.init_upstream = ngx_http_dynroute_balancer_init_upstream;
    uscf->peer.data = bcf;

    /* init_upstream checks that no "server" line came with the stand-in */

    if (ngx_http_dynroute_upstream_stand_in(uscf) != NGX_OK) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_dynroute_module));

    up = static_cast<ngx_http_upstream_srv_conf_t **>(
             ngx_array_push(&dmcf->balancers));
    if (up == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    *up = uscf;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_dynroute_upstream_stand_in(ngx_http_upstream_srv_conf_t *uscf)
    noexcept
{
    ngx_http_upstream_server_t  *none;

    none = static_cast<ngx_http_upstream_server_t *>(
               ngx_array_push(uscf->servers));
    if (none == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(none, sizeof(ngx_http_upstream_server_t));

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynroute_balancer_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us) noexcept
{
    ngx_uint_t                   i;
    ngx_http_upstream_server_t  *server;

    server = static_cast<ngx_http_upstream_server_t *>(us->servers->elts);

    for (i = 0; i < us->servers->nelts; i++) {
        if (server[i].naddrs == 0 && server[i].name.len == 0) {
            continue;   /* the stand-in */
        }

        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "upstream \"%V\" has both dynroute_balancer and "
                      "\"server\" lines: its servers are those of the "
                      "upstream that dynroute chooses, in %s:%ui",
                      &us->host, us->file_name, us->line);
        return NGX_ERROR;
    }

    us->peer.init = ngx_http_dynroute_balancer_init_peer;

    return NGX_OK;
}


/*
 * Postconfiguration: what the directive handler cannot see, because it is
 * written after dynroute_balancer in the block (another balancing method,
 * keepalive, zone), would mix the peers of different upstreams.
 */

ngx_int_t
ngx_http_dynroute_balancer_check(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_uint_t                      i;
    ngx_http_upstream_srv_conf_t  **up;

    up = static_cast<ngx_http_upstream_srv_conf_t **>(dmcf->balancers.elts);

    for (i = 0; i < dmcf->balancers.nelts; i++) {
        if (up[i]->peer.init_upstream
                != ngx_http_dynroute_balancer_init_upstream
            || up[i]->shm_zone)
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "upstream \"%V\" has dynroute_balancer and a "
                          "balancing method, keepalive or zone: put those "
                          "in the upstreams that dynroute chooses, in "
                          "%s:%ui", &up[i]->host, up[i]->file_name,
                          up[i]->line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* request time */


static void
ngx_http_dynroute_balancer_use(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us) noexcept
{
    r->upstream->upstream = us;
#if (NGX_HTTP_SSL)
    r->upstream->ssl_name = us->host;
#endif
}


static ngx_int_t
ngx_http_dynroute_balancer_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us) noexcept
{
    ngx_peer_connection_t               *pc;
    ngx_http_dynroute_ctx_t             *ctx;
    ngx_http_upstream_srv_conf_t        *chosen, *primary;
    ngx_http_dynroute_balancer_conf_t   *bcf;
    ngx_http_dynroute_balancer_peer_t   *bp;

    ctx = ngx_http_dynroute_upstream_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (ctx->rule->dest->rollout == NULL) {
        chosen = ctx->rule->dest->uscf;
        primary = NULL;

    } else {
        chosen = const_cast<ngx_http_upstream_srv_conf_t *>(ctx->chosen);
        primary = (ctx->chosen == ctx->primary)
                  ? NULL
                  : const_cast<ngx_http_upstream_srv_conf_t *>(ctx->primary);
    }

    /*
     * The registry never lets a balancer be a target (nginx -t refuses
     * it); were one chosen anyway, its peer initialisation would be this
     * one, over and over until the stack ran out.
     */

    if (chosen->peer.init == ngx_http_dynroute_balancer_init_peer
        || (primary
            && primary->peer.init == ngx_http_dynroute_balancer_init_peer))
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "dynroute: upstream \"%V\" chose a dynroute_balancer "
                      "upstream", &us->host);
        return NGX_ERROR;
    }

    ngx_http_dynroute_balancer_use(r, chosen);

    if (chosen->peer.init(r, chosen) != NGX_OK) {
        return NGX_ERROR;
    }

    bcf = static_cast<ngx_http_dynroute_balancer_conf_t *>(us->peer.data);

    if (!bcf->fallback || primary == NULL) {
        return NGX_OK;
    }

    bp = static_cast<ngx_http_dynroute_balancer_peer_t *>(
             ngx_pcalloc(r->pool, sizeof(ngx_http_dynroute_balancer_peer_t)));
    if (bp == NULL) {
        return NGX_ERROR;
    }

    pc = &r->upstream->peer;

    bp->request = r;
    bp->primary = primary;
    bp->resend = bcf->resend;
    bp->data = pc->data;
    bp->get = pc->get;
    bp->free = pc->free;

    pc->data = bp;
    pc->get = ngx_http_dynroute_balancer_get;
    pc->free = ngx_http_dynroute_balancer_free;

    /* every callback of the chosen upstream's, as the keepalive module */

    bp->notify = pc->notify;

    if (pc->notify) {
        pc->notify = ngx_http_dynroute_balancer_notify;
    }

#if (NGX_HTTP_SSL)
    bp->set_session = pc->set_session;
    bp->save_session = pc->save_session;
    pc->set_session = ngx_http_dynroute_balancer_set_session;
    pc->save_session = ngx_http_dynroute_balancer_save_session;
#endif

    return NGX_OK;
}


/*
 * The primary's peer initialisation takes over r->upstream->peer (get,
 * free, data, tries): from then on nginx talks to it directly.
 */

static ngx_int_t
ngx_http_dynroute_balancer_fall_back(ngx_peer_connection_t *pc,
    ngx_http_dynroute_balancer_peer_t *bp, const char *why) noexcept
{
    ngx_http_request_t            *r;
    ngx_http_upstream_srv_conf_t  *primary;

    r = bp->request;
    primary = bp->primary;
    bp->primary = NULL;

    ngx_log_error(NGX_LOG_WARN, pc->log, 0,
                  "dynroute: upstream \"%V\" %s, passing the request to the "
                  "primary \"%V\"", &r->upstream->upstream->host, why,
                  &primary->host);

    ngx_http_dynroute_balancer_use(r, primary);
    ngx_http_dynroute_fell_back(r);

    if (primary->peer.init(r, primary) != NGX_OK) {
        return NGX_ERROR;
    }

    return pc->get(pc, pc->data);
}


static ngx_int_t
ngx_http_dynroute_balancer_get(ngx_peer_connection_t *pc, void *data)
    noexcept
{
    ngx_int_t                           rc;
    ngx_http_dynroute_balancer_peer_t  *bp;

    bp = static_cast<ngx_http_dynroute_balancer_peer_t *>(data);

    bp->tries++;

    if (bp->failed && bp->primary) {
        return ngx_http_dynroute_balancer_fall_back(pc, bp,
                   bp->sent ? "failed after the request was sent to it "
                              "(resend=on)"
                            : "could not be connected to");
    }

    rc = bp->get(pc, bp->data);

    if (rc == NGX_BUSY && bp->primary) {
        return ngx_http_dynroute_balancer_fall_back(pc, bp,
                                                    "has no live servers");
    }

    return rc;
}


static void
ngx_http_dynroute_balancer_free(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state) noexcept
{
    bool                                sent;
    ngx_http_upstream_t                *u;
    ngx_http_upstream_conf_t           *conf;
    ngx_http_dynroute_balancer_peer_t  *bp;

    bp = static_cast<ngx_http_dynroute_balancer_peer_t *>(data);

    bp->free(pc, bp->data, state);

    /* a cached keepalive connection that the server closed is not a failure */

    if (!(state & NGX_PEER_FAILED) || pc->cached || bp->primary == NULL) {
        return;
    }

    /*
     * Bytes went out on the connection: the variant may have the request,
     * and may have acted on it.  It is not sent to the primary as well
     * (nor after a later try of the variant fails), unless resend=on.
     */

    u = bp->request->upstream;
    sent = u->request_sent || (pc->connection && pc->connection->sent);

    if (sent && !bp->resend) {
        ngx_log_error(NGX_LOG_WARN, pc->log, 0,
                      "dynroute: upstream \"%V\" failed after the request "
                      "was sent to it: not passing it to the primary \"%V\" "
                      "too (dynroute_balancer resend=on would)",
                      &u->upstream->host, &bp->primary->host);
        bp->primary = NULL;
        return;
    }

    bp->failed = 1;
    bp->sent = sent;

    /*
     * The next try is the primary's, if nginx asks for one: a single-server
     * upstream has just set tries to 0.  proxy_next_upstream_tries still
     * counts every try.
     */

    conf = u->conf;

    if (pc->tries == 0
        && (conf->next_upstream_tries == 0
            || bp->tries < conf->next_upstream_tries))
    {
        pc->tries = 1;
    }
}


static void
ngx_http_dynroute_balancer_notify(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t type) noexcept
{
    ngx_http_dynroute_balancer_peer_t  *bp;

    bp = static_cast<ngx_http_dynroute_balancer_peer_t *>(data);

    bp->notify(pc, bp->data, type);
}


#if (NGX_HTTP_SSL)

static ngx_int_t
ngx_http_dynroute_balancer_set_session(ngx_peer_connection_t *pc, void *data)
    noexcept
{
    ngx_http_dynroute_balancer_peer_t  *bp;

    bp = static_cast<ngx_http_dynroute_balancer_peer_t *>(data);

    return bp->set_session ? bp->set_session(pc, bp->data) : NGX_OK;
}


static void
ngx_http_dynroute_balancer_save_session(ngx_peer_connection_t *pc,
    void *data) noexcept
{
    ngx_http_dynroute_balancer_peer_t  *bp;

    bp = static_cast<ngx_http_dynroute_balancer_peer_t *>(data);

    if (bp->save_session) {
        bp->save_session(pc, bp->data);
    }
}

#endif


/*
 * Merge time, for every location: a *_pass to a dynroute_balancer upstream
 * where no dynroute table is in effect would have no decision to follow.
 *
 * Which upstream a location passes to is in its pass module's location
 * configuration, a structure of that module's own; nginx publishes where
 * its ngx_http_upstream_conf_t is in it, though, in the module's directive
 * table: the "*_connect_timeout" directive's offset is that of the
 * upstream configuration's connect_timeout.  The modules are found by
 * name, so that an nginx built without one of them still loads this one.
 */

typedef struct {
    const char                    *module;
    const char                    *connect_timeout;
} ngx_http_dynroute_pass_module_t;


static const ngx_http_dynroute_pass_module_t  ngx_http_dynroute_pass_modules[]
= {
    { "ngx_http_proxy_module", "proxy_connect_timeout" },
    { "ngx_http_fastcgi_module", "fastcgi_connect_timeout" },
    { "ngx_http_uwsgi_module", "uwsgi_connect_timeout" },
    { "ngx_http_scgi_module", "scgi_connect_timeout" },
    { "ngx_http_grpc_module", "grpc_connect_timeout" }
};


/* the upstream configuration of m's location configuration, or NULL */

static ngx_http_upstream_conf_t *
ngx_http_dynroute_pass_upstream(ngx_module_t *m, const char *directive,
    void *loc_conf) noexcept
{
    size_t          at;
    ngx_command_t  *cmd;

    if (loc_conf == NULL) {
        return NULL;
    }

    for (cmd = m->commands; cmd && cmd->name.len; cmd++) {
        if (!ngx_http_dynroute_is(cmd->name, directive)) {
            continue;
        }

        at = offsetof(ngx_http_upstream_conf_t, connect_timeout);

        if (cmd->conf != NGX_HTTP_LOC_CONF_OFFSET || cmd->offset < at) {
            return NULL;
        }

        return reinterpret_cast<ngx_http_upstream_conf_t *>(
                   static_cast<u_char *>(loc_conf) + (cmd->offset - at));
    }

    return NULL;
}


ngx_int_t
ngx_http_dynroute_balancer_check_location(ngx_conf_t *cf,
    ngx_http_dynroute_loc_conf_t *conf) noexcept
{
    ngx_uint_t                      i;
    ngx_module_t                   *m;
    ngx_http_conf_ctx_t            *ctx;
    ngx_http_upstream_conf_t       *uc;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_str_t                       table;
    const char                     *tables;
    ngx_http_dynroute_main_conf_t  *dmcf;

    if (conf->use != NULL || conf->health) {
        return NGX_OK;
    }

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_dynroute_module));

    if (dmcf->balancers.nelts == 0) {
        return NGX_OK;
    }

    clcf = static_cast<ngx_http_core_loc_conf_t *>(
               ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));

    if (clcf->handler == NULL) {
        return NGX_OK;
    }

    ctx = static_cast<ngx_http_conf_ctx_t *>(cf->ctx);

    for (i = 0; cf->cycle->modules[i]; i++) {
        m = cf->cycle->modules[i];

        if (m->type != NGX_HTTP_MODULE) {
            continue;
        }

        for (const auto &pm : ngx_http_dynroute_pass_modules) {
            if (ngx_strcmp(m->name, pm.module) != 0) {
                continue;
            }

            uc = ngx_http_dynroute_pass_upstream(m, pm.connect_timeout,
                                                 ctx->loc_conf[m->ctx_index]);

            if (uc && uc->upstream
                && uc->upstream->peer.init_upstream
                   == ngx_http_dynroute_balancer_init_upstream)
            {
                /* what to add: the table, or what a TABLE is */

                if (dmcf->tables.nelts == 1) {
                    table = (*static_cast<ngx_http_dynroute_table_t **>(
                                dmcf->tables.elts))->name;
                    tables = "";

                } else {
                    ngx_str_set(&table, "TABLE");
                    tables = dmcf->tables.nelts
                             ? ", TABLE being one of the dynroute_table "
                               "blocks"
                             : ", and a dynroute_table TABLE { ... } to the "
                               "http{} block";
                }

                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "location \"%V\" in %s:%ui passes requests to "
                              "upstream \"%V\" (%s:%ui), a dynroute_balancer, "
                              "but no dynroute table is in effect there: add "
                              "\"dynroute %V;\" to the location or its "
                              "server%s", &clcf->name, conf->where.file,
                              conf->where.line, &uc->upstream->host,
                              uc->upstream->file_name, uc->upstream->line,
                              &table, tables);
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}
