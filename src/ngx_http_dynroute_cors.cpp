/*
 * ngx_http_dynroute_cors_module: CORS at the edge, in the same .so as
 * ngx_http_dynroute_module.
 *
 * Preflights (OPTIONS with Origin and Access-Control-Request-Method) are
 * answered 204 by a rewrite-phase handler that runs first in that phase:
 * before the location's rewrite directives ("return" included), before
 * dynroute's handler can answer 421 or jump to a named location, before
 * access checks (a preflight carries no credentials) and before any
 * content handler, so a preflight is never proxied.  It is answered in the
 * location that the URI selects.
 *
 * Every response of a location with "dynroute_cors on" passes the header
 * filter, which owns the Access-Control-Allow-* and Access-Control-Max-Age
 * headers: whatever the upstream or add_header put there is removed and
 * the edge's policy is written once.  The filter runs after add_header's.
 * Both orders come from this module's place in the module list, after
 * ngx_http_dynroute_module and before ngx_http_headers_filter_module (see
 * "config").
 *
 * Origin matching lives in src/core/cors.cpp.  Every function nginx calls
 * is noexcept; the request path allocates only the header list entries.
 */

#include <new>
#include <string>

#include "ngx_http_dynroute_conf.hpp"
#include "ngx_http_dynroute_string.hpp"
#include "cors.hpp"


extern "C" {
extern ngx_module_t  ngx_http_dynroute_cors_module;
}


/* an on|off directive and where it was set, for errors found in merge */
typedef struct {
    ngx_flag_t                 value;
    u_char                    *file;
    ngx_uint_t                 line;
} ngx_http_dynroute_cors_flag_t;


/* Allocated with new, deleted by a cleanup of the cycle pool. */
typedef struct {
    dynroute::cors::OriginList  list;
    u_char                     *file;
    ngx_uint_t                  line;
} ngx_http_dynroute_cors_origins_t;


/* Allocated with new, deleted by a cleanup of the cycle pool. */
typedef struct {
    dynroute::cors::TokenList   list;
    ngx_str_t                   value;   /* "GET, POST": the header value */
} ngx_http_dynroute_cors_tokens_t;


typedef struct {
    ngx_http_dynroute_cors_tokens_t   *default_methods;   /* GET POST */
    ngx_http_dynroute_cors_tokens_t   *default_headers;   /* none */
    ngx_flag_t                         used;
} ngx_http_dynroute_cors_main_conf_t;


typedef struct {
    ngx_http_dynroute_cors_flag_t      enable;
    ngx_http_dynroute_cors_origins_t  *origins;
    ngx_http_dynroute_cors_tokens_t   *methods;
    ngx_http_dynroute_cors_tokens_t   *headers;
    ngx_http_dynroute_cors_flag_t      credentials;
    ngx_str_t                          max_age;   /* seconds, as sent */
} ngx_http_dynroute_cors_loc_conf_t;


/* the CORS request headers of one request */
typedef struct {
    ngx_table_elt_t           *origin;
    ngx_table_elt_t           *method;    /* Access-Control-Request-Method */
    ngx_table_elt_t           *headers;   /* Access-Control-Request-Headers */
    unsigned                   repeated:1;
} ngx_http_dynroute_cors_request_t;


static ngx_int_t ngx_http_dynroute_cors_preflight_handler(
    ngx_http_request_t *r) noexcept;
static ngx_int_t ngx_http_dynroute_cors_header_filter(ngx_http_request_t *r)
    noexcept;
static void ngx_http_dynroute_cors_scan(ngx_http_request_t *r,
    ngx_http_dynroute_cors_request_t *req) noexcept;
static const char *ngx_http_dynroute_cors_check_preflight(
    ngx_http_dynroute_cors_loc_conf_t *conf,
    ngx_http_dynroute_cors_request_t *req) noexcept;
static bool ngx_http_dynroute_cors_origin_allowed(
    ngx_http_dynroute_cors_loc_conf_t *conf,
    ngx_http_dynroute_cors_request_t *req) noexcept;
static ngx_int_t ngx_http_dynroute_cors_allow(ngx_http_request_t *r,
    ngx_http_dynroute_cors_loc_conf_t *conf, ngx_str_t *origin) noexcept;
static ngx_int_t ngx_http_dynroute_cors_add(ngx_http_request_t *r,
    ngx_str_t *key, ngx_str_t *value) noexcept;

static char *ngx_http_dynroute_cors_flag(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
static char *ngx_http_dynroute_cors_origins(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf) noexcept;
static char *ngx_http_dynroute_cors_tokens(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
static char *ngx_http_dynroute_cors_max_age(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf) noexcept;
static ngx_http_dynroute_cors_tokens_t *ngx_http_dynroute_cors_new_tokens(
    ngx_conf_t *cf, bool caseless) noexcept;
static void ngx_http_dynroute_cors_origins_cleanup(void *data) noexcept;
static void ngx_http_dynroute_cors_tokens_cleanup(void *data) noexcept;

static void *ngx_http_dynroute_cors_create_main_conf(ngx_conf_t *cf)
    noexcept;
static void *ngx_http_dynroute_cors_create_loc_conf(ngx_conf_t *cf) noexcept;
static char *ngx_http_dynroute_cors_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child) noexcept;
static ngx_int_t ngx_http_dynroute_cors_init(ngx_conf_t *cf) noexcept;


static ngx_command_t  ngx_http_dynroute_cors_commands[] = {

    { ngx_string("dynroute_cors"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_dynroute_cors_flag,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dynroute_cors_loc_conf_t, enable),
      NULL },

    { ngx_string("dynroute_cors_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_dynroute_cors_origins,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_cors_methods"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_dynroute_cors_tokens,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dynroute_cors_loc_conf_t, methods),
      NULL },

    { ngx_string("dynroute_cors_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_dynroute_cors_tokens,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dynroute_cors_loc_conf_t, headers),
      NULL },

    { ngx_string("dynroute_cors_credentials"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_dynroute_cors_flag,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_dynroute_cors_loc_conf_t, credentials),
      NULL },

    { ngx_string("dynroute_cors_max_age"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_dynroute_cors_max_age,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_dynroute_cors_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_dynroute_cors_init,           /* postconfiguration */

    ngx_http_dynroute_cors_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_dynroute_cors_create_loc_conf, /* create location configuration */
    ngx_http_dynroute_cors_merge_loc_conf  /* merge location configuration */
};


extern "C" {

ngx_module_t  ngx_http_dynroute_cors_module = {
    NGX_MODULE_V1,
    &ngx_http_dynroute_cors_module_ctx,    /* module context */
    ngx_http_dynroute_cors_commands,       /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};

}


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


static ngx_str_t  ngx_http_dynroute_cors_allow_origin =
    ngx_string("Access-Control-Allow-Origin");
static ngx_str_t  ngx_http_dynroute_cors_allow_credentials =
    ngx_string("Access-Control-Allow-Credentials");
static ngx_str_t  ngx_http_dynroute_cors_allow_methods =
    ngx_string("Access-Control-Allow-Methods");
static ngx_str_t  ngx_http_dynroute_cors_allow_headers =
    ngx_string("Access-Control-Allow-Headers");
static ngx_str_t  ngx_http_dynroute_cors_max_age_name =
    ngx_string("Access-Control-Max-Age");
static ngx_str_t  ngx_http_dynroute_cors_vary = ngx_string("Vary");

static ngx_str_t  ngx_http_dynroute_cors_star = ngx_string("*");
static ngx_str_t  ngx_http_dynroute_cors_true = ngx_string("true");
static ngx_str_t  ngx_http_dynroute_cors_vary_origin = ngx_string("Origin");

/* a preflight's answer depends on all three request headers */
static ngx_str_t  ngx_http_dynroute_cors_vary_preflight =
    ngx_string("Origin, Access-Control-Request-Method, "
               "Access-Control-Request-Headers");
static ngx_str_t  ngx_http_dynroute_cors_vary_request =
    ngx_string("Access-Control-Request-Method, "
               "Access-Control-Request-Headers");


/* request time */


static ngx_int_t
ngx_http_dynroute_cors_preflight_handler(ngx_http_request_t *r) noexcept
{
    ngx_int_t                           rc;
    const char                         *denied;
    ngx_http_dynroute_cors_request_t    req;
    ngx_http_dynroute_cors_loc_conf_t  *conf;

    if (r->method != NGX_HTTP_OPTIONS || r != r->main) {
        return NGX_DECLINED;
    }

    conf = static_cast<ngx_http_dynroute_cors_loc_conf_t *>(
               ngx_http_get_module_loc_conf(r, ngx_http_dynroute_cors_module));

    if (!conf->enable.value || conf->origins == NULL) {
        return NGX_DECLINED;
    }

    ngx_http_dynroute_cors_scan(r, &req);

    if (req.origin == NULL || req.method == NULL) {
        return NGX_DECLINED;        /* a plain OPTIONS request */
    }

    denied = ngx_http_dynroute_cors_check_preflight(conf, &req);

    if (denied) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "dynroute_cors: preflight from origin \"%V\" for "
                      "method \"%V\" denied: %s", &req.origin->value,
                      &req.method->value, denied);
    }

    /* answered here, allowed or not; the header filter adds the headers */

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->header_only = 1;

    rc = ngx_http_send_header(r);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


static ngx_int_t
ngx_http_dynroute_cors_header_filter(ngx_http_request_t *r) noexcept
{
    bool                                any, vary_origin;
    ngx_str_t                          *vary, *origin;
    ngx_http_dynroute_cors_request_t    req;
    ngx_http_dynroute_cors_loc_conf_t  *conf;

    conf = static_cast<ngx_http_dynroute_cors_loc_conf_t *>(
               ngx_http_get_module_loc_conf(r, ngx_http_dynroute_cors_module));

    if (!conf->enable.value || conf->origins == NULL || r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    /*
     * The edge's policy wins: drop the Access-Control-Allow-* and
     * Access-Control-Max-Age headers of the upstream or of add_header, and
     * see whether a Vary already names Origin.
     */

    vary_origin = false;

    ngx_http_dynroute_each_header(&r->headers_out.headers,
        [&](ngx_table_elt_t &h) {

        if (h.hash == 0) {
            return;
        }

        if ((h.key.len > sizeof("Access-Control-Allow-") - 1
             && ngx_strncasecmp(h.key.data,
                                (u_char *) "Access-Control-Allow-",
                                sizeof("Access-Control-Allow-") - 1)
                == 0)
            || ngx_http_dynroute_header_is(h,
                   ngx_http_dynroute_view(ngx_http_dynroute_cors_max_age_name)))
        {
            h.hash = 0;
            return;
        }

        if (ngx_http_dynroute_header_is(h, "Vary")
            && dynroute::cors::vary_lists(ngx_http_dynroute_view(h.value),
                                          "Origin"))
        {
            vary_origin = true;
        }
    });

    ngx_http_dynroute_cors_scan(r, &req);

    any = conf->origins->list.any();
    origin = any ? &ngx_http_dynroute_cors_star
                 : (req.origin ? &req.origin->value : NULL);

    if (r->method == NGX_HTTP_OPTIONS && req.origin && req.method) {

        /* a preflight, answered by the handler above (or by a "return") */

        vary = (any || vary_origin) ? &ngx_http_dynroute_cors_vary_request
                                    : &ngx_http_dynroute_cors_vary_preflight;

        if (ngx_http_dynroute_cors_add(r, &ngx_http_dynroute_cors_vary, vary)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_http_dynroute_cors_check_preflight(conf, &req) != NULL) {
            return ngx_http_next_header_filter(r);
        }

        if (ngx_http_dynroute_cors_allow(r, conf, origin) != NGX_OK) {
            return NGX_ERROR;
        }

        if (ngx_http_dynroute_cors_add(r,
                &ngx_http_dynroute_cors_allow_methods, &conf->methods->value)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (!conf->headers->list.empty()) {

            /* with credentials "*" is taken literally: name the headers */

            if (!conf->headers->list.any() || conf->credentials.value != 1) {
                if (ngx_http_dynroute_cors_add(r,
                        &ngx_http_dynroute_cors_allow_headers,
                        &conf->headers->value)
                    != NGX_OK)
                {
                    return NGX_ERROR;
                }

            } else if (req.headers && req.headers->value.len
                       && ngx_http_dynroute_cors_add(r,
                              &ngx_http_dynroute_cors_allow_headers,
                              &req.headers->value)
                          != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        if (conf->max_age.len
            && ngx_http_dynroute_cors_add(r,
                   &ngx_http_dynroute_cors_max_age_name, &conf->max_age)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        return ngx_http_next_header_filter(r);
    }

    /* an actual response, proxied or local, errors included */

    if (!any && !vary_origin
        && ngx_http_dynroute_cors_add(r, &ngx_http_dynroute_cors_vary,
                                      &ngx_http_dynroute_cors_vary_origin)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (origin == NULL
        || !ngx_http_dynroute_cors_origin_allowed(conf, &req)
        || !dynroute::cors::method_allowed(
                conf->methods->list, ngx_http_dynroute_view(r->method_name)))
    {
        return ngx_http_next_header_filter(r);
    }

    if (ngx_http_dynroute_cors_allow(r, conf, origin) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


/* the allowed origin, and the credentials flag when it is on */

static ngx_int_t
ngx_http_dynroute_cors_allow(ngx_http_request_t *r,
    ngx_http_dynroute_cors_loc_conf_t *conf, ngx_str_t *origin) noexcept
{
    if (ngx_http_dynroute_cors_add(r, &ngx_http_dynroute_cors_allow_origin,
                                   origin)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (conf->credentials.value == 1) {
        return ngx_http_dynroute_cors_add(r,
                   &ngx_http_dynroute_cors_allow_credentials,
                   &ngx_http_dynroute_cors_true);
    }

    return NGX_OK;
}


static void
ngx_http_dynroute_cors_scan(ngx_http_request_t *r,
    ngx_http_dynroute_cors_request_t *req) noexcept
{
    ngx_memzero(req, sizeof(ngx_http_dynroute_cors_request_t));

    ngx_http_dynroute_each_header(&r->headers_in.headers,
        [req](ngx_table_elt_t &h) {

        ngx_table_elt_t  **found;

        if (ngx_http_dynroute_header_is(h, "Origin")) {
            found = &req->origin;

        } else if (ngx_http_dynroute_header_is(h,
                       "Access-Control-Request-Method"))
        {
            found = &req->method;

        } else if (ngx_http_dynroute_header_is(h,
                       "Access-Control-Request-Headers"))
        {
            found = &req->headers;

        } else {
            return;
        }

        if (*found) {
            req->repeated = 1;      /* ambiguous: never allowed */
        }

        *found = &h;
    });
}


/* NULL when the preflight is allowed, else why not */

static const char *
ngx_http_dynroute_cors_check_preflight(ngx_http_dynroute_cors_loc_conf_t *conf,
    ngx_http_dynroute_cors_request_t *req) noexcept
{
    if (req->repeated) {
        return "a CORS request header is repeated";
    }

    if (!ngx_http_dynroute_cors_origin_allowed(conf, req)) {
        return "origin not allowed";
    }

    if (!dynroute::cors::method_allowed(conf->methods->list,
            ngx_http_dynroute_view(req->method->value)))
    {
        return "method not allowed";
    }

    if (req->headers
        && !conf->headers->list.contains_all(
                ngx_http_dynroute_view(req->headers->value)))
    {
        return "headers not allowed";
    }

    return NULL;
}


static bool
ngx_http_dynroute_cors_origin_allowed(ngx_http_dynroute_cors_loc_conf_t *conf,
    ngx_http_dynroute_cors_request_t *req) noexcept
{
    if (conf->origins->list.any()) {
        return true;
    }

    if (req->origin == NULL || req->repeated) {
        return false;
    }

    return conf->origins->list.allows(
               ngx_http_dynroute_view(req->origin->value));
}


static ngx_int_t
ngx_http_dynroute_cors_add(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *value) noexcept
{
    ngx_table_elt_t  *h;

    h = static_cast<ngx_table_elt_t *>(
            ngx_list_push(&r->headers_out.headers));
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key = *key;
    h->value = *value;
    h->lowcase_key = NULL;

    return NGX_OK;
}


/* configuration */


static char *
ngx_http_dynroute_cors_flag(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_str_t                           *value;
    ngx_http_dynroute_cors_flag_t       *flag;
    ngx_http_dynroute_cors_main_conf_t  *cmcf;

    flag = reinterpret_cast<ngx_http_dynroute_cors_flag_t *>(
               static_cast<u_char *>(conf) + cmd->offset);

    if (flag->value != NGX_CONF_UNSET) {
        return const_cast<char *>("is duplicate");
    }

    value = static_cast<ngx_str_t *>(cf->args->elts);

    if (ngx_strcasecmp(value[1].data, (u_char *) "on") == 0) {
        flag->value = 1;

    } else if (ngx_strcasecmp(value[1].data, (u_char *) "off") == 0) {
        flag->value = 0;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, "
                           "it must be \"on\" or \"off\"",
                           &value[1], &cmd->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    flag->file = cf->conf_file->file.name.data;
    flag->line = cf->conf_file->line;

    if (cmd->offset == offsetof(ngx_http_dynroute_cors_loc_conf_t, enable)
        && flag->value == 1)
    {
        cmcf = static_cast<ngx_http_dynroute_cors_main_conf_t *>(
                   ngx_http_conf_get_module_main_conf(cf,
                       ngx_http_dynroute_cors_module));
        cmcf->used = 1;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_dynroute_cors_origins(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_http_dynroute_cors_loc_conf_t *clcf =
        static_cast<ngx_http_dynroute_cors_loc_conf_t *>(conf);

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_pool_cleanup_t                *cln;
    ngx_http_dynroute_cors_origins_t  *origins;

    if (clcf->origins != NGX_CONF_UNSET_PTR) {
        return const_cast<char *>("is duplicate");
    }

    value = static_cast<ngx_str_t *>(cf->args->elts);

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    try {
        origins = new ngx_http_dynroute_cors_origins_t();
        cln->handler = ngx_http_dynroute_cors_origins_cleanup;
        cln->data = origins;

        for (i = 1; i < cf->args->nelts; i++) {
            try {
                origins->list.add(ngx_http_dynroute_view(value[i]));

            } catch (const dynroute::ConfigError &e) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid origin \"%V\": %s",
                                   &value[i], e.what());
                return NGX_HTTP_DYNROUTE_CONF_ERROR;
            }
        }

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute_cors");
    }

    origins->file = cf->conf_file->file.name.data;
    origins->line = cf->conf_file->line;

    clcf->origins = origins;

    return NGX_CONF_OK;
}


/* dynroute_cors_methods (case-sensitive) and dynroute_cors_headers */

static char *
ngx_http_dynroute_cors_tokens(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    bool                              headers;
    ngx_str_t                        *value;
    ngx_uint_t                        i;
    ngx_http_dynroute_cors_tokens_t  *tokens, **field;

    field = reinterpret_cast<ngx_http_dynroute_cors_tokens_t **>(
                static_cast<u_char *>(conf) + cmd->offset);

    if (*field != NGX_CONF_UNSET_PTR) {
        return const_cast<char *>("is duplicate");
    }

    headers = (cmd->offset
               == offsetof(ngx_http_dynroute_cors_loc_conf_t, headers));

    tokens = ngx_http_dynroute_cors_new_tokens(cf, headers);
    if (tokens == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    value = static_cast<ngx_str_t *>(cf->args->elts);

    for (i = 1; i < cf->args->nelts; i++) {
        try {
            if (!headers && value[i].len == 1 && value[i].data[0] == '*') {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid method \"*\": list the methods");
                return NGX_HTTP_DYNROUTE_CONF_ERROR;
            }

            tokens->list.add(ngx_http_dynroute_view(value[i]));

        } catch (const dynroute::ConfigError &e) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid %s \"%V\": %s",
                               headers ? "header" : "method", &value[i],
                               e.what());
            return NGX_HTTP_DYNROUTE_CONF_ERROR;

        } catch (...) {
            return ngx_http_dynroute_conf_caught(cf, "dynroute_cors");
        }
    }

    try {
        std::string joined = tokens->list.joined();

        tokens->value.len = joined.size();
        tokens->value.data = static_cast<u_char *>(
                                 ngx_pnalloc(cf->pool, joined.size() + 1));
        if (tokens->value.data == NULL) {
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }

        ngx_memcpy(tokens->value.data, joined.data(), joined.size() + 1);

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute_cors");
    }

    *field = tokens;

    return NGX_CONF_OK;
}


static char *
ngx_http_dynroute_cors_max_age(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_http_dynroute_cors_loc_conf_t *clcf =
        static_cast<ngx_http_dynroute_cors_loc_conf_t *>(conf);

    u_char     *p;
    ngx_int_t   sec;
    ngx_str_t  *value;

    if (clcf->max_age.data) {
        return const_cast<char *>("is duplicate");
    }

    value = static_cast<ngx_str_t *>(cf->args->elts);

    sec = ngx_parse_time(&value[1], 1);
    if (sec == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive",
                           &value[1], &cmd->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    p = static_cast<u_char *>(ngx_pnalloc(cf->pool, NGX_INT_T_LEN));
    if (p == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    clcf->max_age.data = p;
    clcf->max_age.len = ngx_sprintf(p, "%i", sec) - p;

    return NGX_CONF_OK;
}


static ngx_http_dynroute_cors_tokens_t *
ngx_http_dynroute_cors_new_tokens(ngx_conf_t *cf, bool caseless) noexcept
{
    ngx_pool_cleanup_t               *cln;
    ngx_http_dynroute_cors_tokens_t  *tokens;

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    try {
        tokens = new ngx_http_dynroute_cors_tokens_t{
                     dynroute::cors::TokenList(caseless), { 0, NULL } };

    } catch (...) {
        (void) ngx_http_dynroute_conf_caught(cf, "dynroute_cors");
        return NULL;
    }

    cln->handler = ngx_http_dynroute_cors_tokens_cleanup;
    cln->data = tokens;

    return tokens;
}


static void
ngx_http_dynroute_cors_origins_cleanup(void *data) noexcept
{
    delete static_cast<ngx_http_dynroute_cors_origins_t *>(data);
}


static void
ngx_http_dynroute_cors_tokens_cleanup(void *data) noexcept
{
    delete static_cast<ngx_http_dynroute_cors_tokens_t *>(data);
}


static void *
ngx_http_dynroute_cors_create_main_conf(ngx_conf_t *cf) noexcept
{
    static ngx_str_t  get = ngx_string("GET");
    static ngx_str_t  post = ngx_string("POST");
    static ngx_str_t  joined = ngx_string("GET, POST");

    ngx_http_dynroute_cors_main_conf_t  *cmcf;

    cmcf = static_cast<ngx_http_dynroute_cors_main_conf_t *>(
               ngx_pcalloc(cf->pool,
                           sizeof(ngx_http_dynroute_cors_main_conf_t)));
    if (cmcf == NULL) {
        return NULL;
    }

    cmcf->default_methods = ngx_http_dynroute_cors_new_tokens(cf, false);
    if (cmcf->default_methods == NULL) {
        return NULL;
    }

    try {
        cmcf->default_methods->list.add(ngx_http_dynroute_view(get));
        cmcf->default_methods->list.add(ngx_http_dynroute_view(post));

    } catch (...) {
        (void) ngx_http_dynroute_conf_caught(cf, "dynroute_cors");
        return NULL;
    }

    cmcf->default_methods->value = joined;

    cmcf->default_headers = ngx_http_dynroute_cors_new_tokens(cf, true);
    if (cmcf->default_headers == NULL) {
        return NULL;
    }

    return cmcf;
}


static void *
ngx_http_dynroute_cors_create_loc_conf(ngx_conf_t *cf) noexcept
{
    ngx_http_dynroute_cors_loc_conf_t  *conf;

    conf = static_cast<ngx_http_dynroute_cors_loc_conf_t *>(
               ngx_pcalloc(cf->pool,
                           sizeof(ngx_http_dynroute_cors_loc_conf_t)));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->enable.file = NULL;
     *     conf->credentials.file = NULL;
     *     conf->max_age = { 0, NULL };
     */

    conf->enable.value = NGX_CONF_UNSET;
    conf->credentials.value = NGX_CONF_UNSET;
    conf->origins = static_cast<ngx_http_dynroute_cors_origins_t *>(
                        NGX_CONF_UNSET_PTR);
    conf->methods = static_cast<ngx_http_dynroute_cors_tokens_t *>(
                        NGX_CONF_UNSET_PTR);
    conf->headers = static_cast<ngx_http_dynroute_cors_tokens_t *>(
                        NGX_CONF_UNSET_PTR);

    return conf;
}


static void
ngx_http_dynroute_cors_merge_flag(ngx_http_dynroute_cors_flag_t *conf,
    ngx_http_dynroute_cors_flag_t *prev) noexcept
{
    if (conf->value == NGX_CONF_UNSET) {
        *conf = *prev;
    }

    if (conf->value == NGX_CONF_UNSET) {
        conf->value = 0;
    }
}


static char *
ngx_http_dynroute_cors_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child) noexcept
{
    ngx_http_dynroute_cors_loc_conf_t *prev =
        static_cast<ngx_http_dynroute_cors_loc_conf_t *>(parent);
    ngx_http_dynroute_cors_loc_conf_t *conf =
        static_cast<ngx_http_dynroute_cors_loc_conf_t *>(child);

    ngx_http_dynroute_cors_main_conf_t  *cmcf;

    cmcf = static_cast<ngx_http_dynroute_cors_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(
                   cf, ngx_http_dynroute_cors_module));

    ngx_http_dynroute_cors_merge_flag(&conf->enable, &prev->enable);
    ngx_http_dynroute_cors_merge_flag(&conf->credentials, &prev->credentials);

    ngx_conf_merge_ptr_value(conf->origins, prev->origins, NULL);
    ngx_conf_merge_ptr_value(conf->methods, prev->methods,
                             cmcf->default_methods);
    ngx_conf_merge_ptr_value(conf->headers, prev->headers,
                             cmcf->default_headers);

    ngx_conf_merge_str_value(conf->max_age, prev->max_age, "");

    /*
     * "*" with credentials is what let a reflecting CORS middleware hand
     * any site its users' data: refuse it, wherever the two were set.
     */

    if (conf->origins && conf->origins->list.any()
        && conf->credentials.value == 1)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dynroute_cors_origins *\" cannot be used with "
                      "\"dynroute_cors_credentials on\" of %s:%ui: with "
                      "credentials, list the allowed origins in %s:%ui",
                      conf->credentials.file, conf->credentials.line,
                      conf->origins->file, conf->origins->line);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    if (conf->enable.value == 1 && conf->origins == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dynroute_cors on\" without "
                      "\"dynroute_cors_origins\" allows no origin in %s:%ui",
                      conf->enable.file, conf->enable.line);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_dynroute_cors_init(ngx_conf_t *cf) noexcept
{
    ngx_http_handler_pt                 *h;
    ngx_http_core_main_conf_t           *cmcf;
    ngx_http_dynroute_cors_main_conf_t  *ccf;

    ccf = static_cast<ngx_http_dynroute_cors_main_conf_t *>(
              ngx_http_conf_get_module_main_conf(
                  cf, ngx_http_dynroute_cors_module));

    if (!ccf->used) {
        return NGX_OK;
    }

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_dynroute_cors_header_filter;

    /*
     * The handlers of a phase run in reverse order of registration, and
     * modules are initialised in the order of the module list, where this
     * one comes after ngx_http_rewrite_module and ngx_http_dynroute_module:
     * this handler runs before theirs.
     */

    cmcf = static_cast<ngx_http_core_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module));

    h = static_cast<ngx_http_handler_pt *>(
            ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers));
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_dynroute_cors_preflight_handler;

    return NGX_OK;
}
