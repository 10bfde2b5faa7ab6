/*
 * The variables of the decision.  Each one reads the request's context,
 * deciding first if nothing was decided yet (a variable read before the
 * precontent phase: in a rewrite, a log format, a *_pass).
 */

#include <string_view>

#include "ngx_http_dynroute_variables.hpp"
#include "ngx_http_dynroute_decision.hpp"


static ngx_int_t ngx_http_dynroute_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data) noexcept;


enum {
    NGX_HTTP_DYNROUTE_VAR_UPSTREAM,
    NGX_HTTP_DYNROUTE_VAR_RULE,
    NGX_HTTP_DYNROUTE_VAR_VARIANT,
    NGX_HTTP_DYNROUTE_VAR_PRIMARY,
    NGX_HTTP_DYNROUTE_VAR_FALLBACK,
    NGX_HTTP_DYNROUTE_VAR_SERVED,
    NGX_HTTP_DYNROUTE_VAR_REASON
};


static ngx_http_variable_t  ngx_http_dynroute_vars[] = {

    { ngx_string("dynroute_upstream"), NULL, ngx_http_dynroute_variable,
      NGX_HTTP_DYNROUTE_VAR_UPSTREAM, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynroute_rule"), NULL, ngx_http_dynroute_variable,
      NGX_HTTP_DYNROUTE_VAR_RULE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynroute_variant"), NULL, ngx_http_dynroute_variable,
      NGX_HTTP_DYNROUTE_VAR_VARIANT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynroute_primary"), NULL, ngx_http_dynroute_variable,
      NGX_HTTP_DYNROUTE_VAR_PRIMARY, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynroute_fallback"), NULL, ngx_http_dynroute_variable,
      NGX_HTTP_DYNROUTE_VAR_FALLBACK, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynroute_served"), NULL, ngx_http_dynroute_variable,
      NGX_HTTP_DYNROUTE_VAR_SERVED, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("dynroute_reason"), NULL, ngx_http_dynroute_variable,
      NGX_HTTP_DYNROUTE_VAR_REASON, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_dynroute_rule_reason = ngx_string("rule");


/*
 * $dynroute_upstream: the rule's upstream, or its rollout's chosen variant's;
 * $dynroute_rule: the rule as written; $dynroute_variant: the chosen
 * variant's name (rollouts only); $dynroute_primary: the rollout's primary
 * upstream, or the rule's upstream.  A named location is not an upstream:
 * see ngx_http_dynroute_no_upstream for what a *_pass gets then.
 */

static ngx_int_t
ngx_http_dynroute_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data) noexcept
{
    const ngx_str_t              *s;
    ngx_str_t                     host, what;
    std::string_view              reason;
    ngx_http_dynroute_ctx_t      *ctx;
    ngx_http_dynroute_rule_t     *rule;
    ngx_http_dynroute_rollout_t  *ro;

    ctx = ngx_http_dynroute_request_ctx(r);

    if (ctx == NULL || ctx->rule == NULL) {
        return ngx_http_dynroute_no_upstream(r, v,
                   data == NGX_HTTP_DYNROUTE_VAR_UPSTREAM
                   || data == NGX_HTTP_DYNROUTE_VAR_PRIMARY);
    }

    rule = ctx->rule;
    ro = rule->dest->rollout;
    s = NULL;

    switch (data) {

    case NGX_HTTP_DYNROUTE_VAR_RULE:
        if (ctx->runtime) {
            host = ngx_http_dynroute_subject(r, ctx->table, &what);
            s = &host;
            break;
        }

        s = &rule->text;
        break;

    case NGX_HTTP_DYNROUTE_VAR_VARIANT:
        s = ro ? &ro->variants[ngx_http_dynroute_variant(r, ctx)].name : NULL;
        break;

    case NGX_HTTP_DYNROUTE_VAR_FALLBACK:
        s = (ro && ctx->fallback) ? &ro->variants[ctx->primary_variant].name
                                  : NULL;
        break;

    case NGX_HTTP_DYNROUTE_VAR_SERVED:
        if (ro) {
            (void) ngx_http_dynroute_variant(r, ctx);
            s = &ro->variants[ctx->fallback ? ctx->primary_variant
                                            : ctx->variant].name;
        }

        break;

    case NGX_HTTP_DYNROUTE_VAR_REASON:
        if (ro) {
            (void) ngx_http_dynroute_variant(r, ctx);
            reason = dynroute::Rollout::reason_name(
                ctx->fallback ? dynroute::Rollout::Reason::fallback
                    : static_cast<dynroute::Rollout::Reason>(ctx->reason));
            host.data = reinterpret_cast<u_char *>(
                            const_cast<char *>(reason.data()));
            host.len = reason.size();
            s = &host;

        } else if (!rule->dest->named) {
            s = &ngx_http_dynroute_rule_reason;
        }

        break;

    case NGX_HTTP_DYNROUTE_VAR_PRIMARY:
        if (ro) {
            (void) ngx_http_dynroute_variant(r, ctx);
            s = &ctx->primary->host;
            break;
        }

        /* fall through */

    default: /* NGX_HTTP_DYNROUTE_VAR_UPSTREAM */
        if (ro) {
            (void) ngx_http_dynroute_variant(r, ctx);
            s = &ctx->chosen->host;

        } else if (!rule->dest->named) {
            s = &rule->dest->target;
        }
    }

    if (s == NULL) {
        return ngx_http_dynroute_no_upstream(r, v,
                   data == NGX_HTTP_DYNROUTE_VAR_UPSTREAM
                   || data == NGX_HTTP_DYNROUTE_VAR_PRIMARY);
    }

    v->data = s->data;
    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_dynroute_capture_not_found(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data) noexcept
{
    v->not_found = 1;
    return NGX_OK;
}


ngx_int_t
ngx_http_dynroute_add_variables(ngx_conf_t *cf) noexcept
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_dynroute_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}
