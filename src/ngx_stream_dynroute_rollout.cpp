/*
 * dynroute_rollout in stream{}: canary, A/B/n and blue/green splits of
 * connections, as a stream table's target.
 *
 * The split is the core's (src/core/rollout.cpp), as for the http
 * rollouts: weighted rendezvous hashing of the key, the first non-empty
 * "key" variable or the client address.  The same rollout name, variant
 * names, weights and key give the same variant in http and in stream.
 *
 * At L4 there are no headers and no cookies, and stream has no runtime
 * state yet: "header", "cookie", "override_from", "sticky_cookie",
 * "guard", "ramp" and "primary" are refused with what to write instead.
 * "source CIDR VARIANT" is what gives chosen clients a variant.
 */

#include <string_view>
#include <vector>

#include "ngx_stream_dynroute_rollout.hpp"
#include "suggest.hpp"


/* resolved when ngx_stream_module is linked before this .so, else NULL;
 * the module's directives check that before this file is reached */
#pragma weak ngx_stream_get_variable_index
#pragma weak ngx_stream_get_indexed_variable


/* a "source" line, kept until every variant is known */
typedef struct {
    ngx_str_t                        variant;
    dynroute::Cidr                   cidr;
    u_char                          *file;
    ngx_uint_t                       line;
} ngx_stream_dynroute_source_t;


typedef struct {
    ngx_stream_dynroute_rollout_t              *rollout;
    void                                       *stream_ctx;
    std::vector<ngx_stream_dynroute_source_t>   sources;
    bool                                        has_key;
} ngx_stream_dynroute_rollout_parse_t;


/* what an http rollout's line becomes in stream: why not, and instead */
typedef struct {
    const char                      *name;
    const char                      *why;
} ngx_stream_dynroute_refused_t;


static ngx_stream_dynroute_refused_t  ngx_stream_dynroute_refused[] = {

    { "header", "a TCP connection has no headers: to give chosen clients "
      "a variant, write \"source CIDR VARIANT;\"" },

    { "cookie", "a TCP connection has no cookies: to give chosen clients "
      "a variant, write \"source CIDR VARIANT;\"" },

    { "override_from", "there is nothing to override at L4 (no header or "
      "cookie): to give chosen clients a variant, write "
      "\"source CIDR VARIANT;\"" },

    { "sticky_cookie", "a TCP connection has no cookies: a key's variant "
      "stays while the weights hold, so choose a stable key with "
      "\"key $variable;\"" },

    { "guard", "a guard needs the runtime state, which stream rollouts "
      "do not have yet: change the weights in the configuration and "
      "reload" },

    { "ramp", "a ramp needs the runtime state, which stream rollouts do "
      "not have yet: change the weights in the configuration and "
      "reload" },

    { "primary", "nothing in stream overrides or falls back to a primary: "
      "remove the line" },
};


static char *ngx_stream_dynroute_rollout_line(ngx_conf_t *cf,
    ngx_command_t *dummy, void *conf) noexcept;
static char *ngx_stream_dynroute_rollout_directive(ngx_conf_t *cf,
    ngx_stream_dynroute_rollout_parse_t *p, ngx_str_t *value);
static char *ngx_stream_dynroute_rollout_finish(ngx_conf_t *cf,
    ngx_stream_dynroute_rollout_parse_t *p);


char *
ngx_stream_dynroute_rollout_block(ngx_conf_t *cf, ngx_array_t *rollouts)
    noexcept
{
    char                           *rv;
    ngx_str_t                      *value;
    ngx_stream_dynroute_rollout_t  *ro;

    value = static_cast<ngx_str_t *>(cf->args->elts);

    ro = ngx_http_dynroute_conf_new_named<ngx_stream_dynroute_rollout_t>(cf,
             rollouts, "dynroute rollout");
    if (ro == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    try {
        ro->core.reset(new dynroute::Rollout(
                           ngx_http_dynroute_view(value[1])));

        ngx_stream_dynroute_rollout_parse_t  p{ro, cf->ctx, {}, false};

        rv = ngx_http_dynroute_conf_block(cf,
                                          ngx_stream_dynroute_rollout_line,
                                          &p, NULL);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        return ngx_stream_dynroute_rollout_finish(cf, &p);

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute");
    }
}


static char *
ngx_stream_dynroute_rollout_line(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf) noexcept
{
    ngx_stream_dynroute_rollout_parse_t *p =
        static_cast<ngx_stream_dynroute_rollout_parse_t *>(cf->ctx);

    ngx_str_t  *value;

    value = static_cast<ngx_str_t *>(cf->args->elts);

    if (cf->args->nelts == 2 && ngx_http_dynroute_is(value[0], "include")) {
        return ngx_conf_include(cf, dummy, conf);
    }

    try {
        return ngx_stream_dynroute_rollout_directive(cf, p, value);

    } catch (const dynroute::ConfigError &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s in dynroute rollout \"%V\"", e.what(),
                           &p->rollout->name);

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute");
    }

    return NGX_HTTP_DYNROUTE_CONF_ERROR;
}


static char *
ngx_stream_dynroute_rollout_arity(ngx_conf_t *cf,
    ngx_stream_dynroute_rollout_parse_t *p, ngx_str_t *value,
    const char *expected)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid number of parameters in \"%V\" of dynroute "
                       "rollout \"%V\": expected %s", &value[0],
                       &p->rollout->name, expected);

    return NGX_HTTP_DYNROUTE_CONF_ERROR;
}


static char *
ngx_stream_dynroute_rollout_directive(ngx_conf_t *cf,
    ngx_stream_dynroute_rollout_parse_t *p, ngx_str_t *value)
{
    void                           *ctx;
    ngx_int_t                       index;
    ngx_str_t                       name;
    ngx_uint_t                      i, n;
    ngx_stream_dynroute_source_t    src;
    ngx_stream_dynroute_variant_t   v;
    ngx_stream_dynroute_rollout_t  *ro = p->rollout;

    n = cf->args->nelts - 1;

    if (ngx_http_dynroute_is(value[0], "variant")) {
        if (n != 3) {
            return ngx_stream_dynroute_rollout_arity(cf, p, value,
                       "a name, a stream upstream and a weight");
        }

        if (value[2].len == 0 || value[2].data[0] == '$'
            || value[2].data[0] == '@')
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid upstream \"%V\" of variant \"%V\" "
                               "in dynroute rollout \"%V\": a variant's "
                               "upstream is a stream upstream{} block",
                               &value[2], &value[1], &ro->name);
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }

        ro->core->add_variant(ngx_http_dynroute_view(value[1]),
                              ngx_http_dynroute_view(value[3]));

        v.name = value[1];
        v.upstream = value[2];
        v.uscf = NULL;
        v.counters = NULL;
        v.file = cf->conf_file->file.name.data;
        v.line = cf->conf_file->line;
        ro->variants.push_back(v);

        return NGX_CONF_OK;
    }

    if (ngx_http_dynroute_is(value[0], "key")) {
        if (n == 0) {
            return ngx_stream_dynroute_rollout_arity(cf, p, value,
                       "one variable at least");
        }

        if (p->has_key) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate \"key\" in dynroute rollout "
                               "\"%V\": list the variables on one line",
                               &ro->name);
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }

        p->has_key = true;

        for (i = 1; i <= n; i++) {
            if (value[i].len < 2 || value[i].data[0] != '$') {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid key \"%V\" in dynroute rollout "
                                   "\"%V\": expected a variable such as "
                                   "$remote_addr or "
                                   "$ssl_preread_server_name",
                                   &value[i], &ro->name);
                return NGX_HTTP_DYNROUTE_CONF_ERROR;
            }

            name.data = value[i].data + 1;
            name.len = value[i].len - 1;

            if (name.len >= 9
                && ngx_strncasecmp(name.data, (u_char *) "dynroute_", 9)
                   == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid key \"%V\" in dynroute rollout "
                                   "\"%V\": the key is read to take the "
                                   "decision that $dynroute_* report; use "
                                   "$remote_addr or "
                                   "$ssl_preread_server_name",
                                   &value[i], &ro->name);
                return NGX_HTTP_DYNROUTE_CONF_ERROR;
            }

            /* the variables API needs the stream{} context */

            ctx = cf->ctx;
            cf->ctx = p->stream_ctx;
            index = ngx_stream_get_variable_index(cf, &name);
            cf->ctx = ctx;

            if (index == NGX_ERROR) {
                return NGX_HTTP_DYNROUTE_CONF_ERROR;
            }

            ro->keys.push_back(index);
            ro->key_names.push_back(name);
        }

        return NGX_CONF_OK;
    }

    if (ngx_http_dynroute_is(value[0], "source")) {
        if (n != 2) {
            return ngx_stream_dynroute_rollout_arity(cf, p, value,
                       "an address and a variant");
        }

        src.cidr = dynroute::parse_cidr(ngx_http_dynroute_view(value[1]));
        src.variant = value[2];
        src.file = cf->conf_file->file.name.data;
        src.line = cf->conf_file->line;

        if (src.cidr.host_bits) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "low address bits of %V are meaningless",
                               &value[1]);
        }

        p->sources.push_back(src);

        return NGX_CONF_OK;
    }

    for (const auto &r : ngx_stream_dynroute_refused) {
        if (ngx_http_dynroute_is(value[0], r.name)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" does not apply to the stream dynroute "
                               "rollout \"%V\": %s", &value[0], &ro->name,
                               r.why);
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown directive \"%V\" in stream dynroute rollout "
                       "\"%V\": expected variant, key, source or include",
                       &value[0], &ro->name);

    return NGX_HTTP_DYNROUTE_CONF_ERROR;
}


/* the end of the block: the sources, which name variants, then weights */

static char *
ngx_stream_dynroute_rollout_finish(ngx_conf_t *cf,
    ngx_stream_dynroute_rollout_parse_t *p)
{
    ngx_stream_dynroute_source_t   *at;
    ngx_stream_dynroute_rollout_t  *ro;

    ro = p->rollout;
    at = NULL;

    try {
        for (auto &s : p->sources) {
            at = &s;
            ro->core->add_source(s.cidr, ngx_http_dynroute_view(s.variant));
        }

        at = NULL;
        ro->core->finish();

    } catch (const dynroute::ConfigError &e) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "%s in dynroute rollout \"%V\" in %s:%ui", e.what(),
                      &ro->name, at ? at->file : ro->file,
                      at ? at->line : ro->line);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute");
    }

    ro->sources = !p->sources.empty();

    return NGX_CONF_OK;
}


/*
 * " (did you mean ...?)" for name, an unknown upstream of a variant: the
 * closest of the stream upstreams a variant may name, or "".
 */

static ngx_str_t
ngx_stream_dynroute_upstream_hint(ngx_conf_t *cf, const ngx_str_t &name,
    ngx_array_t *upstreams) noexcept
{
    ngx_uint_t                        i;
    ngx_stream_upstream_srv_conf_t  **up;

    try {
        dynroute::ClosestName  closest(ngx_http_dynroute_view(name));

        up = static_cast<ngx_stream_upstream_srv_conf_t **>(upstreams->elts);

        for (i = 0; i < upstreams->nelts; i++) {
            if ((up[i]->flags & NGX_STREAM_UPSTREAM_CREATE)
                && !ngx_stream_dynroute_is_balancer(up[i]))
            {
                closest.consider(ngx_http_dynroute_view(up[i]->host));
            }
        }

        return ngx_http_dynroute_did_you_mean(cf, closest.best());

    } catch (...) {
        return ngx_http_dynroute_did_you_mean(cf, std::string_view());
    }
}


/* once stream{} is read */

ngx_int_t
ngx_stream_dynroute_rollout_check(ngx_conf_t *cf,
    ngx_stream_dynroute_rollout_t *ro, ngx_array_t *upstreams) noexcept
{
    ngx_str_t                        hint;
    ngx_stream_upstream_srv_conf_t  *uscf;

    if (ngx_stream_dynroute_find_upstream(upstreams, ro->name)) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "dynroute rollout \"%V\" has the name of a stream "
                      "upstream: a table's target would name both, rename "
                      "one of them, in %s:%ui", &ro->name, ro->file,
                      ro->line);
        return NGX_ERROR;
    }

    for (const auto &k : ro->key_names) {
        if (!ngx_stream_dynroute_variable_exists(cf, k)) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown variable \"$%V\" in the key of dynroute "
                          "rollout \"%V\": use a stream variable, such as "
                          "$remote_addr or $ssl_preread_server_name, "
                          "in %s:%ui", &k, &ro->name, ro->file, ro->line);
            return NGX_ERROR;
        }
    }

    for (auto &v : ro->variants) {
        uscf = ngx_stream_dynroute_find_upstream(upstreams, v.upstream);

        if (uscf == NULL && ngx_stream_dynroute_http_upstream(cf, v.upstream))
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "upstream \"%V\" of variant \"%V\" in dynroute "
                          "rollout \"%V\" is an http upstream: a stream "
                          "rollout routes to stream upstreams, declare "
                          "\"upstream %V { ... }\" in stream{}, in %s:%ui",
                          &v.upstream, &v.name, &ro->name, &v.upstream,
                          v.file, v.line);
            return NGX_ERROR;
        }

        if (uscf == NULL) {
            hint = ngx_stream_dynroute_upstream_hint(cf, v.upstream,
                                                     upstreams);
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown stream upstream \"%V\"%V of variant "
                          "\"%V\" in dynroute rollout \"%V\": declare "
                          "\"upstream %V { server ...; }\" in stream{}, "
                          "in %s:%ui", &v.upstream, &hint, &v.name,
                          &ro->name, &v.upstream, v.file, v.line);
            return NGX_ERROR;
        }

        if (ngx_stream_dynroute_is_balancer(uscf)) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "stream upstream \"%V\" of variant \"%V\" in "
                          "dynroute rollout \"%V\" has dynroute_balancer: "
                          "a variant's upstream has servers, in %s:%ui",
                          &v.upstream, &v.name, &ro->name, v.file, v.line);
            return NGX_ERROR;
        }

        v.uscf = uscf;
    }

    return NGX_OK;
}


/* connection time: nothing here allocates */

static void
ngx_stream_dynroute_rollout_address(ngx_connection_t *c,
    dynroute::Address &addr) noexcept
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    switch (c->sockaddr->sa_family) {

    case AF_INET:
        sin = reinterpret_cast<struct sockaddr_in *>(c->sockaddr);
        addr.family = 4;
        ngx_memcpy(addr.bytes, &sin->sin_addr, 4);
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = reinterpret_cast<struct sockaddr_in6 *>(c->sockaddr);
        addr.family = 6;
        ngx_memcpy(addr.bytes, &sin6->sin6_addr, 16);
        break;
#endif

    default: /* a unix socket matches no source */
        addr.family = 0;
    }
}


ngx_uint_t
ngx_stream_dynroute_rollout_pick(ngx_stream_session_t *s,
    const ngx_stream_dynroute_rollout_t *ro, const dynroute::Split &split)
    noexcept
{
    ngx_uint_t                    v;
    dynroute::Address             addr;
    ngx_stream_variable_value_t  *vv;
    dynroute::Rollout::Inputs     in;

    /* the first non-empty key variable, or the client address */

    for (ngx_int_t index : ro->keys) {
        vv = ngx_stream_get_indexed_variable(s, index);

        if (vv && !vv->not_found && vv->len) {
            in.key = std::string_view(reinterpret_cast<char *>(vv->data),
                                      vv->len);
            break;
        }
    }

    if (in.key.empty()) {
        in.key = ngx_http_dynroute_view(s->connection->addr_text);
    }

    if (ro->sources) {
        ngx_stream_dynroute_rollout_address(s->connection, addr);
        in.address = &addr;
    }

    v = ro->core->pick(in, split);

    ngx_log_debug4(NGX_LOG_DEBUG_STREAM, s->connection->log, 0,
                   "dynroute: rollout \"%V\" variant \"%V\" for key "
                   "\"%*s\"", &ro->name, &ro->variants[v].name,
                   in.key.size(), in.key.data());

    return v;
}
