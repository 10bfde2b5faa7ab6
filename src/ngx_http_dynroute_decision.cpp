/*
 * The routing decision.  Made when first needed -- by the precontent
 * handler, a variable, or the balancer -- and kept in the request's
 * context.  Its actions (a jump to a named location, a 421) are taken in
 * the precontent phase, after the location's access checks, and only for
 * the main request: see "Security model" in the README.
 *
 * The matching itself is the core's (dynroute::Table); the live values,
 * runtime hosts and rollout splits, the view's (ngx_http_dynroute_view.cpp).
 * Nothing here allocates beyond the request's pool, locks or throws.
 */

#include "ngx_http_dynroute_decision.hpp"
#include "ngx_http_dynroute_atomic.hpp"
#include "ngx_http_dynroute_services.hpp"
#include "ngx_http_dynroute_live.hpp"
#include "ngx_http_dynroute_rollout.hpp"
#include "host.hpp"
#include "metrics.hpp"


static ngx_int_t ngx_http_dynroute_handler(ngx_http_request_t *r) noexcept;
static ngx_http_dynroute_ctx_t *ngx_http_dynroute_decide(
    ngx_http_request_t *r, ngx_http_dynroute_ctx_t *ctx,
    ngx_http_dynroute_table_t *table) noexcept;
static ngx_http_dynroute_ctx_t *ngx_http_dynroute_decide_key(
    ngx_http_request_t *r, ngx_http_dynroute_ctx_t *ctx,
    ngx_http_dynroute_table_t *table,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;
static void ngx_http_dynroute_ctx_cleanup(void *data) noexcept;
static ngx_int_t ngx_http_dynroute_stand_in_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us) noexcept;


/* $dynroute_rule where none matched, in debug lines */
static ngx_str_t  ngx_http_dynroute_no_rule = ngx_string("(none)");

/* what a Host table matches */
static ngx_str_t  ngx_http_dynroute_host_what = ngx_string("host");


/*
 * The precontent phase: after rewrite, return and the access checks
 * (allow/deny, auth_basic, auth_request), so that a jump never skips them;
 * before try_files, mirror and the content handler.
 */

static ngx_int_t
ngx_http_dynroute_handler(ngx_http_request_t *r) noexcept
{
    ngx_str_t                      subject, what;
    ngx_http_dynroute_ctx_t       *ctx;
    ngx_http_dynroute_table_t     *table;
    ngx_http_dynroute_loc_conf_t  *dlcf;

    dlcf = static_cast<ngx_http_dynroute_loc_conf_t *>(
               ngx_http_get_module_loc_conf(r, ngx_http_dynroute_module));

    /* health and API locations answer for this instance: never routed */

    if (dlcf->use == NULL || dlcf->health || dlcf->api) {
        return NGX_DECLINED;
    }

    /*
     * A subrequest (auth_request, mirror, SSI, addition, slice, a cache
     * update) is never answered by a jump or a 421: its variables still
     * carry the decision, and a *_pass that needs an upstream where there
     * is none gets a 500 (ngx_http_dynroute_no_upstream).
     */

    if (r != r->main) {
        return NGX_DECLINED;
    }

    table = dlcf->use->table;

    ctx = ngx_http_dynroute_get_ctx(r);

    if (ctx == NULL || ctx->table != table) {
        ctx = ngx_http_dynroute_decide(r, ctx, table);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ctx->rule == NULL) {
        subject = ngx_http_dynroute_subject(r, table, &what);
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "dynroute: no rule of table \"%V\" matches "
                      "%V \"%V\", answering 421", &table->name,
                      &what, &subject);
        return NGX_HTTP_MISDIRECTED_REQUEST;
    }

    /* a request jumps once: the named location serves it from then on */

    if (!ctx->rule->dest->named || ctx->jumped) {
        return NGX_DECLINED;
    }

    ctx->jumped = &ctx->rule->dest->target;

    (void) ngx_http_named_location(r, ctx->jumped);

    ngx_http_finalize_request(r, NGX_DONE);
    return NGX_DONE;
}


/* after a jump to a named location or an internal redirect */

ngx_http_dynroute_ctx_t *
ngx_http_dynroute_find_ctx(ngx_http_request_t *r) noexcept
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_dynroute_ctx_t  *ctx;

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_dynroute_ctx_cleanup) {
            ctx = static_cast<ngx_http_dynroute_ctx_t *>(cln->data);
            ngx_http_set_ctx(r, ctx, ngx_http_dynroute_module);
            return ctx;
        }
    }

    return NULL;
}


/*
 * A new context, set for the module.  The main request's is marked by a
 * pool cleanup of its own (as the realip module keeps its context), both
 * taken in one allocation and linked as ngx_pool_cleanup_add() links one.
 */

typedef struct {
    ngx_pool_cleanup_t         cln;
    ngx_http_dynroute_ctx_t    ctx;
} ngx_http_dynroute_ctx_mark_t;


static ngx_http_dynroute_ctx_t *
ngx_http_dynroute_new_ctx(ngx_http_request_t *r) noexcept
{
    ngx_http_dynroute_ctx_t       *ctx;
    ngx_http_dynroute_ctx_mark_t  *m;

    if (r == r->main) {
        m = static_cast<ngx_http_dynroute_ctx_mark_t *>(
                ngx_palloc(r->pool, sizeof(ngx_http_dynroute_ctx_mark_t)));
        if (m == NULL) {
            return NULL;
        }

        ctx = &m->ctx;

        m->cln.handler = ngx_http_dynroute_ctx_cleanup;
        m->cln.data = ctx;
        m->cln.next = r->pool->cleanup;
        r->pool->cleanup = &m->cln;

    } else {
        ctx = static_cast<ngx_http_dynroute_ctx_t *>(
                  ngx_palloc(r->pool, sizeof(ngx_http_dynroute_ctx_t)));
        if (ctx == NULL) {
            return NULL;
        }
    }

    ngx_memzero(ctx, sizeof(ngx_http_dynroute_ctx_t));

    ngx_http_set_ctx(r, ctx, ngx_http_dynroute_module);

    return ctx;
}


/*
 * The named captures of the table's regex that matched host.  Never
 * inlined: its locals, whose addresses it passes, would cost every
 * decision a stack guard.
 */

static __attribute__((noinline)) void
ngx_http_dynroute_set_captures(ngx_http_request_t *r,
    ngx_http_dynroute_table_t *table, int regex, const ngx_str_t *host)
    noexcept
{
    size_t                      begin, end;
    ngx_http_variable_value_t  *vv;

    for (const auto &c : table->captures[regex]) {
        vv = &r->variables[c.index];

        if (table->core.group(c.group, begin, end)) {
            vv->data = host->data + begin;
            vv->len = end - begin;

        } else {
            vv->data = host->data;
            vv->len = 0;
        }

        vv->valid = 1;
        vv->no_cacheable = 0;
        vv->not_found = 0;
    }
}


/* ctx: the request's context if it has one already, or NULL */

static ngx_http_dynroute_ctx_t *
ngx_http_dynroute_decide(ngx_http_request_t *r, ngx_http_dynroute_ctx_t *ctx,
    ngx_http_dynroute_table_t *table) noexcept
{
    uint64_t                       hash;
    ngx_str_t                     *host;
    dynroute::Decision             d;
    ngx_http_dynroute_main_conf_t *dmcf;

    if (ctx == NULL) {
        ctx = ngx_http_dynroute_new_ctx(r);
        if (ctx == NULL) {
            return NULL;
        }
    }

    ctx->table = table;
    ctx->picked = 0;

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_get_module_main_conf(r, ngx_http_dynroute_module));

    if (table->key.len) {
        return ngx_http_dynroute_decide_key(r, ctx, table, dmcf);
    }

    host = ngx_http_dynroute_host_ref(r);

    /* once, for the runtime hosts and the table alike */
    hash = dynroute::Table::hash_host(ngx_http_dynroute_view(*host));

    /* a runtime host entry wins over the configured rules */

    if (dmcf->zone) {
        ctx->rule = ngx_http_dynroute_live_host(dmcf->live, table->index,
                                                *host, hash);
        if (ctx->rule) {
            ctx->runtime = 1;
            ctx->service = ngx_http_dynroute_services_stamp(dmcf, ctx->rule);

            ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "dynroute: table \"%V\" host \"%V\" runtime "
                           "entry \"%V\"", &table->name, host,
                           &ctx->rule->dest->target);
            return ctx;
        }
    }

    ctx->runtime = 0;

    /*
     * The Host header, as nginx validated it, is lowercase and, but for
     * one written with a port and a dot after it ("a.example.com.:80."),
     * has no trailing dot: the table's fast path.  That one, and the
     * server name that stands in for a missing header, are searched as
     * any bytes.
     */

    if (r->headers_in.server.len && host->data[host->len - 1] != '.') {
        d = table->core.find_lower(ngx_http_dynroute_view(*host), hash);

    } else {
        d = table->core.find(ngx_http_dynroute_view(*host));
    }

    if (d.error()) {
        if (table->counters) {
            ngx_http_dynroute_count(
                &table->counters[dynroute::metrics::t_regex_errors]);
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynroute: a regex of table \"%V\" failed on "
                      "host \"%V\", using the default", &table->name, host);
    }

    ctx->rule = (d.rule == dynroute::no_rule) ? NULL : &table->rules[d.rule];
    ctx->rule_index = d.rule;

    if (d.regex >= 0) {
        ngx_http_dynroute_set_captures(r, table, d.regex, host);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "dynroute: table \"%V\" host \"%V\" rule \"%V\"",
                   &table->name, host,
                   ctx->rule ? &ctx->rule->text : &ngx_http_dynroute_no_rule);

    return ctx;
}


/*
 * A table with key=$variable: the variable's value is matched as a Host
 * is, by find() (exact names and wildcards caseless, one trailing dot
 * ignored; regexes see the value as it is, and their captures point into
 * it), after the runtime hosts, which are stored lowercase: the value is
 * folded for them into a buffer on the stack.  A value that is no name
 * (not found, empty, too long, odd bytes) matches nothing: the default,
 * or no rule.  Out of line: the Host tables do not pay for its frame.
 */

static __attribute__((noinline)) ngx_http_dynroute_ctx_t *
ngx_http_dynroute_decide_key(ngx_http_request_t *r,
    ngx_http_dynroute_ctx_t *ctx, ngx_http_dynroute_table_t *table,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    char                        buf[dynroute::max_key];
    ngx_str_t                   value, folded, what, shown;
    std::string_view            lower;
    dynroute::Decision          d;
    ngx_http_variable_value_t  *vv;

    /* a key that reads $dynroute_* (through map) finds no rule yet */

    ctx->rule = NULL;

    vv = ngx_http_get_flushed_variable(r, table->key_index);

    if (vv == NULL || vv->not_found) {
        ngx_str_null(&value);

    } else {
        value.data = vv->data;
        value.len = vv->len;
    }

    ctx->runtime = 0;

    if (dynroute::classify_key(ngx_http_dynroute_view(value))
        != dynroute::KeyValue::name)
    {
        d.rule = table->core.default_rule();

    } else {
        if (dmcf->zone) {
            lower = dynroute::fold_key(ngx_http_dynroute_view(value), buf);

            folded.data = reinterpret_cast<u_char *>(buf);
            folded.len = lower.size();

            ctx->rule = ngx_http_dynroute_live_host(dmcf->live, table->index,
                            folded, dynroute::Table::hash_host(lower));
            if (ctx->rule) {
                ctx->runtime = 1;
                ctx->service = ngx_http_dynroute_services_stamp(dmcf,
                                                                ctx->rule);

                ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                               "dynroute: table \"%V\" key %V \"%V\" "
                               "runtime entry \"%V\"", &table->name,
                               &table->key, &folded,
                               &ctx->rule->dest->target);
                return ctx;
            }
        }

        d = table->core.find(ngx_http_dynroute_view(value));
    }

    if (d.error()) {
        if (table->counters) {
            ngx_http_dynroute_count(
                &table->counters[dynroute::metrics::t_regex_errors]);
        }

        shown = ngx_http_dynroute_subject(r, table, &what);
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynroute: a regex of table \"%V\" failed on "
                      "%V \"%V\", using the default", &table->name,
                      &what, &shown);
    }

    ctx->rule = (d.rule == dynroute::no_rule) ? NULL : &table->rules[d.rule];
    ctx->rule_index = d.rule;

    if (d.regex >= 0) {
        ngx_http_dynroute_set_captures(r, table, d.regex, &value);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "dynroute: table \"%V\" key %V rule \"%V\"",
                   &table->name, &table->key,
                   ctx->rule ? &ctx->rule->text : &ngx_http_dynroute_no_rule);

    return ctx;
}


ngx_str_t
ngx_http_dynroute_subject(ngx_http_request_t *r,
    ngx_http_dynroute_table_t *table, ngx_str_t *what) noexcept
{
    ngx_str_t                   s;
    ngx_http_variable_value_t  *vv;

    if (table->key.len == 0) {
        *what = ngx_http_dynroute_host_what;
        return ngx_http_dynroute_host(r);
    }

    *what = table->key;

    vv = ngx_http_get_indexed_variable(r, table->key_index);

    if (vv == NULL || vv->not_found) {
        ngx_str_set(&s, "");
        return s;
    }

    s.data = vv->data;
    s.len = vv->len;

    switch (dynroute::classify_key(ngx_http_dynroute_view(s))) {

    case dynroute::KeyValue::name:
        break;

    case dynroute::KeyValue::empty:
        break;

    case dynroute::KeyValue::too_long:
        ngx_str_set(&s, "(longer than 255 bytes)");
        break;

    case dynroute::KeyValue::odd:
        ngx_str_set(&s, "(not a name)");
        break;
    }

    return s;
}


static void
ngx_http_dynroute_ctx_cleanup(void *data) noexcept
{
    /* nothing to free: the mark lets the context be found again */
}


ngx_uint_t
ngx_http_dynroute_variant(ngx_http_request_t *r, ngx_http_dynroute_ctx_t *ctx)
    noexcept
{
    ngx_uint_t                      v, p;
    dynroute::StickyValue           sticky;
    dynroute::Rollout::Reason       reason;
    ngx_http_dynroute_route_t       route;
    ngx_http_dynroute_main_conf_t  *dmcf;

    if (!ctx->picked || ctx->sockaddr != r->connection->sockaddr) {
        dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
                   ngx_http_get_module_main_conf(r, ngx_http_dynroute_module));

        route = ngx_http_dynroute_live_route(dmcf->live,
                                             ctx->rule->dest->rollout);
        v = ngx_http_dynroute_rollout_pick(r, ctx->rule->dest->rollout,
                                           route.split, &reason,
                                           r == r->main ? &sticky : NULL);
        p = route.split.primary;

        ctx->variant = static_cast<uint16_t>(v);
        ctx->primary_variant = static_cast<uint16_t>(p);
        ctx->chosen = route.upstreams[v];
        ctx->primary = route.upstreams[p];

        /* a variant flipped to a service: which one, and its incarnation */

        ctx->service_key = route.services[v];
        ctx->primary_service_key = route.services[p];

        if (ctx->service_key) {
            ctx->service = ngx_http_dynroute_services_stamp_key(dmcf,
                               ctx->service_key);
        }

        if (ctx->primary_service_key) {
            ctx->primary_service = ngx_http_dynroute_services_stamp_key(dmcf,
                                       ctx->primary_service_key);
        }

        ctx->sockaddr = r->connection->sockaddr;
        ctx->reason = static_cast<unsigned>(reason);
        ctx->set_sticky = (reason == dynroute::Rollout::Reason::weight
                           && ctx->rule->dest->rollout->sticky.len
                           && r == r->main);

        if (ctx->set_sticky) {
            ctx->sticky_issued = sticky.issued;
            ctx->sticky_tag = sticky.tag;
        }
        ctx->picked = 1;
    }

    return ctx->variant;
}


/* read before the precontent phase handler ran (or where it is not
 * registered): decide now */

ngx_http_dynroute_ctx_t *
ngx_http_dynroute_decide_here(ngx_http_request_t *r) noexcept
{
    ngx_http_dynroute_loc_conf_t  *dlcf;

    dlcf = static_cast<ngx_http_dynroute_loc_conf_t *>(
               ngx_http_get_module_loc_conf(r, ngx_http_dynroute_module));

    if (dlcf->use == NULL) {
        return NULL;
    }

    return ngx_http_dynroute_decide(r, NULL, dlcf->use->table);
}


/*
 * The decision has no upstream (a named location, no rule, no table here).
 * For logs, "if" and "set" the variable is not found.  A proxy_pass (or
 * grpc_pass, fastcgi_pass...) evaluating its target from it -- r->upstream
 * exists but has no configuration yet -- would fail with "invalid URL
 * prefix in "http://""; it gets the name of an upstream{} of the module's
 * own instead, whose peer initialisation logs why and fails: a 500.
 */

static ngx_str_t  ngx_http_dynroute_stand_in_name =
    ngx_string("dynroute.no-upstream.invalid");


ngx_int_t
ngx_http_dynroute_no_upstream(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, bool upstream) noexcept
{
    if (!upstream || r->upstream == NULL || r->upstream->conf != NULL)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = ngx_http_dynroute_stand_in_name.data;
    v->len = ngx_http_dynroute_stand_in_name.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * Added last, after the upstream module initialised the others, so that
 * looking up a real upstream by name never passes it.
 */

ngx_int_t
ngx_http_dynroute_add_stand_in(ngx_conf_t *cf) noexcept
{
    ngx_url_t                      u;
    ngx_http_upstream_srv_conf_t  *uscf;

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.host = ngx_http_dynroute_stand_in_name;
    u.no_resolve = 1;

    uscf = ngx_http_upstream_add(cf, &u, NGX_HTTP_UPSTREAM_CREATE);
    if (uscf == NULL) {
        return NGX_ERROR;
    }

    uscf->peer.init = ngx_http_dynroute_stand_in_init_peer;

    return NGX_OK;
}


/* one error line: why r has no upstream to be passed to */

void
ngx_http_dynroute_log_no_upstream(ngx_http_request_t *r,
    ngx_http_dynroute_ctx_t *ctx) noexcept
{
    ngx_str_t                  host, what;
    ngx_http_dynroute_rule_t  *rule;

    if (ctx == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynroute: no upstream to pass to: no dynroute table "
                      "is in effect here");
        return;
    }

    host = ngx_http_dynroute_subject(r, ctx->table, &what);
    rule = ctx->rule;

    if (rule == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynroute: no upstream to pass to: no rule of table "
                      "\"%V\" matches %V \"%V\"",
                      &ctx->table->name, &what, &host);

    } else if (r != r->main) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynroute: no upstream to pass to: table \"%V\" sends "
                      "%V \"%V\" to the named location \"%V\", which a "
                      "subrequest does not jump to",
                      &ctx->table->name, &what, &host, &rule->dest->target);

    } else if (ctx->jumped == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynroute: no upstream to pass to: table \"%V\" sends "
                      "%V \"%V\" to the named location \"%V\"",
                      &ctx->table->name, &what, &host, &rule->dest->target);

    } else if (ngx_http_dynroute_eq(*ctx->jumped, rule->dest->target)) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynroute: no upstream to pass to: table \"%V\" sends "
                      "%V \"%V\" to the named location \"%V\", and the "
                      "request came back from there by an internal "
                      "redirect", &ctx->table->name, &what, &host,
                      &rule->dest->target);

    } else {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynroute: no upstream to pass to: table \"%V\" sends "
                      "%V \"%V\" to the named location \"%V\", and the "
                      "request was already sent to \"%V\": a request jumps "
                      "to a named location only once",
                      &ctx->table->name, &what, &host, &rule->dest->target,
                      ctx->jumped);
    }
}


static ngx_int_t
ngx_http_dynroute_stand_in_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us) noexcept
{
    ngx_http_dynroute_log_no_upstream(r, ngx_http_dynroute_get_ctx(r));
    return NGX_ERROR;
}


void
ngx_http_dynroute_fell_back(ngx_http_request_t *r) noexcept
{
    ngx_http_dynroute_ctx_t  *ctx;

    ctx = ngx_http_dynroute_get_ctx(r);

    if (ctx) {
        ctx->fallback = 1;
    }
}


/*
 * The precontent handler acts only where a table can jump to a named
 * location, answer 421 (no default), or set named captures that other
 * directives may read before the upstream is chosen.  Otherwise the
 * decision is made by whatever first needs it ($dynroute_*, the balancer),
 * with the same result, and the handler is not registered at all.
 */

static bool
ngx_http_dynroute_needs_handler(ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_uint_t                  i;
    ngx_http_dynroute_use_t   **up;
    ngx_http_dynroute_table_t  *t;

    up = static_cast<ngx_http_dynroute_use_t **>(dmcf->uses.elts);

    for (i = 0; i < dmcf->uses.nelts; i++) {
        t = up[i]->table;

        if (t->core.default_rule() == dynroute::no_rule) {
            return true;
        }

        for (const auto &rule : t->rules) {
            if (rule.dest->named) {
                return true;
            }
        }

        for (const auto &c : t->captures) {
            if (!c.empty()) {
                return true;
            }
        }
    }

    return false;
}


ngx_int_t
ngx_http_dynroute_decision_init(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    if (!ngx_http_dynroute_needs_handler(dmcf)) {
        return NGX_OK;
    }

    cmcf = static_cast<ngx_http_core_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module));

    h = static_cast<ngx_http_handler_pt *>(
            ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers));
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_dynroute_handler;

    return NGX_OK;
}
