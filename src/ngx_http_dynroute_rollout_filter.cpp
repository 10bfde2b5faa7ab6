/*
 * The response filter of rollouts that take overrides or set a stickiness
 * cookie, in the chain where nginx's own filter modules are: just below
 * ngx_http_headers_filter_module (add_header, expires), whose headers it
 * sees, in both builds (see `config`).
 */

#include "ngx_http_dynroute_rollout_filter.hpp"
#include "ngx_http_dynroute_decision.hpp"
#include "ngx_http_dynroute_reply.hpp"


static ngx_int_t ngx_http_dynroute_header_filter(ngx_http_request_t *r)
    noexcept;
static ngx_int_t ngx_http_dynroute_set_sticky(ngx_http_request_t *r,
    ngx_http_dynroute_ctx_t *ctx, ngx_http_dynroute_rollout_t *ro) noexcept;
static ngx_int_t ngx_http_dynroute_private_response(ngx_http_request_t *r)
    noexcept;


static ngx_http_output_header_filter_pt  ngx_http_dynroute_next_header_filter;

static ngx_str_t  ngx_http_dynroute_set_cookie = ngx_string("Set-Cookie");
static ngx_str_t  ngx_http_dynroute_cache_control =
    ngx_string("Cache-Control");
static ngx_str_t  ngx_http_dynroute_private = ngx_string("private");


/*
 * A rollout's response: the stickiness cookie for a first visit, and no
 * storing in a shared cache for a response that is one client's own (its
 * variant chosen by an override, or the cookie set): Cache-Control:
 * private for caches in front, and this nginx's own proxy_cache told not
 * to store it.
 */

static ngx_int_t
ngx_http_dynroute_header_filter(ngx_http_request_t *r) noexcept
{
    bool                          own;
    ngx_http_dynroute_ctx_t      *ctx;
    ngx_http_dynroute_rollout_t  *ro;

    if (r != r->main) {
        return ngx_http_dynroute_next_header_filter(r);
    }

    ctx = ngx_http_dynroute_get_ctx(r);

    if (ctx == NULL || !ctx->picked || ctx->rule == NULL
        || ctx->rule->dest->rollout == NULL)
    {
        return ngx_http_dynroute_next_header_filter(r);
    }

    ro = ctx->rule->dest->rollout;

    own = ctx->reason
              == static_cast<unsigned>(dynroute::Rollout::Reason::header)
          || ctx->reason
              == static_cast<unsigned>(dynroute::Rollout::Reason::cookie);

    /* a failed variant's pick is not recorded: the next request picks */

    if (ctx->set_sticky && !ctx->fallback) {
        if (ngx_http_dynroute_set_sticky(r, ctx, ro) != NGX_OK) {
            return NGX_ERROR;
        }

        own = true;
    }

    ctx->set_sticky = 0;

    if (!own) {
        return ngx_http_dynroute_next_header_filter(r);
    }

    if (ngx_http_dynroute_private_response(r) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_dynroute_next_header_filter(r);
}


ngx_int_t
ngx_http_dynroute_rollout_filter_init(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_uint_t                      i;
    ngx_http_dynroute_rollout_t   **rp;

    rp = static_cast<ngx_http_dynroute_rollout_t **>(dmcf->rollouts.elts);

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        if (rp[i]->header.len || rp[i]->cookie.len || rp[i]->sticky.len) {
            ngx_http_dynroute_next_header_filter = ngx_http_top_header_filter;
            ngx_http_top_header_filter = ngx_http_dynroute_header_filter;
            break;
        }
    }

    return NGX_OK;
}


/* a first visit's stickiness cookie: NAME=<issue time><tag>; attributes */

static ngx_int_t
ngx_http_dynroute_set_sticky(ngx_http_request_t *r,
    ngx_http_dynroute_ctx_t *ctx, ngx_http_dynroute_rollout_t *ro) noexcept
{
    u_char     *p;
    ngx_str_t   cookie;

    cookie.len = ro->sticky.len + 1 + dynroute::sticky_value_size
                 + ro->sticky_attrs.size();

    cookie.data = static_cast<u_char *>(ngx_pnalloc(r->pool, cookie.len));
    if (cookie.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(cookie.data, ro->sticky.data, ro->sticky.len);
    *p++ = '=';
    dynroute::format_sticky({ctx->sticky_issued, ctx->sticky_tag},
                            reinterpret_cast<char *>(p));
    p += dynroute::sticky_value_size;
    ngx_memcpy(p, ro->sticky_attrs.data(), ro->sticky_attrs.size());

    if (ngx_http_dynroute_add_header(r, ngx_http_dynroute_set_cookie, cookie)
        == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * One client's own response: not stored by this nginx's proxy_cache, and
 * the upstream's Cache-Control gives way to "private" (no-store stays).
 */

static ngx_int_t
ngx_http_dynroute_private_response(ngx_http_request_t *r) noexcept
{
    bool  no_store;

    if (r->upstream) {
        r->upstream->cacheable = 0;
    }

    no_store = false;

    ngx_http_dynroute_each_header(&r->headers_out.headers,
        [&](ngx_table_elt_t &e) {

        if (e.hash && ngx_http_dynroute_header_is(e, "Cache-Control")
            && ngx_strlcasestrn(e.value.data, e.value.data + e.value.len,
                                (u_char *) "no-store", 8 - 1))
        {
            no_store = true;
        }
    });

    if (no_store) {
        return NGX_OK;
    }

    ngx_http_dynroute_each_header(&r->headers_out.headers,
        [&](ngx_table_elt_t &e) {

        if (ngx_http_dynroute_header_is(e, "Cache-Control")) {
            e.hash = 0;
        }
    });

    /* not r->headers_out.cache_control: "expires" would rewrite it */

    if (ngx_http_dynroute_add_header(r, ngx_http_dynroute_cache_control,
                                     ngx_http_dynroute_private)
        == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}
