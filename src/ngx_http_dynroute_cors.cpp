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
 * The policy (what to answer, which headers to set) lives in
 * src/core/cors.cpp: this glue reads the request's headers, asks it,
 * removes the upstream's Access-Control-* headers and writes the policy's.
 * Every function nginx calls is noexcept; the request path allocates only
 * the header list entries.
 */

#include <new>
#include <string_view>
#include <utility>

#include "ngx_http_dynroute_conf.hpp"
#include "ngx_http_dynroute_reply.hpp"
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


/* The token lists are allocated with new, deleted by a cleanup. */
typedef struct {
    dynroute::cors::TokenList         *default_methods;   /* GET POST */
    dynroute::cors::TokenList         *default_headers;   /* none */
    ngx_flag_t                         used;
} ngx_http_dynroute_cors_main_conf_t;


typedef struct {
    ngx_http_dynroute_cors_flag_t      enable;
    ngx_http_dynroute_cors_origins_t  *origins;
    dynroute::cors::TokenList         *methods;
    dynroute::cors::TokenList         *headers;
    ngx_http_dynroute_cors_flag_t      credentials;
    ngx_str_t                          max_age;   /* seconds, as sent */

    /* where CORS is on, else NULL; the parent's when all is inherited */
    dynroute::cors::Policy            *policy;
} ngx_http_dynroute_cors_loc_conf_t;


static ngx_int_t ngx_http_dynroute_cors_preflight_handler(
    ngx_http_request_t *r) noexcept;
static ngx_int_t ngx_http_dynroute_cors_header_filter(ngx_http_request_t *r)
    noexcept;
static void ngx_http_dynroute_cors_read(ngx_http_request_t *r,
    dynroute::cors::Request *in) noexcept;
static ngx_int_t ngx_http_dynroute_cors_write(ngx_http_request_t *r,
    const dynroute::cors::Decision &d) noexcept;

static char *ngx_http_dynroute_cors_flag(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
static char *ngx_http_dynroute_cors_origins(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf) noexcept;
static char *ngx_http_dynroute_cors_tokens(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
static char *ngx_http_dynroute_cors_max_age(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf) noexcept;
static dynroute::cors::TokenList *ngx_http_dynroute_cors_new_tokens(
    ngx_conf_t *cf, bool caseless) noexcept;
static dynroute::cors::Policy *ngx_http_dynroute_cors_new_policy(
    ngx_conf_t *cf, ngx_http_dynroute_cors_loc_conf_t *conf) noexcept;

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


/* request time */


static ngx_int_t
ngx_http_dynroute_cors_preflight_handler(ngx_http_request_t *r) noexcept
{
    ngx_int_t                           rc;
    dynroute::cors::Request             in;
    dynroute::cors::Decision            d;
    ngx_http_dynroute_cors_loc_conf_t  *conf;

    /* what cannot be a preflight leaves before the headers are read */

    if (r->method != NGX_HTTP_OPTIONS || r != r->main) {
        return NGX_DECLINED;
    }

    conf = static_cast<ngx_http_dynroute_cors_loc_conf_t *>(
               ngx_http_get_module_loc_conf(r, ngx_http_dynroute_cors_module));

    if (conf->policy == NULL) {
        return NGX_DECLINED;
    }

    ngx_http_dynroute_cors_read(r, &in);

    d = conf->policy->decide(in);

    if (!d.preflight) {
        return NGX_DECLINED;        /* a plain OPTIONS request */
    }

    if (d.denied) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "dynroute_cors: preflight from origin \"%*s\" for "
                      "method \"%*s\" denied: %s",
                      in.origin->size(), in.origin->data(),
                      in.request_method->size(), in.request_method->data(),
                      d.denied);
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


/*
 * Every response of a location where CORS is on, a preflight's answer
 * included: the edge's policy replaces the Access-Control-Allow-* and
 * Access-Control-Max-Age headers of the upstream or of add_header.
 */

static ngx_int_t
ngx_http_dynroute_cors_header_filter(ngx_http_request_t *r) noexcept
{
    dynroute::cors::Request             in;
    dynroute::cors::Decision            d;
    ngx_http_dynroute_cors_loc_conf_t  *conf;

    conf = static_cast<ngx_http_dynroute_cors_loc_conf_t *>(
               ngx_http_get_module_loc_conf(r, ngx_http_dynroute_cors_module));

    if (conf->policy == NULL) {
        return ngx_http_next_header_filter(r);
    }

    ngx_http_dynroute_cors_read(r, &in);

    d = conf->policy->decide(in);

    if (!d.applies) {
        return ngx_http_next_header_filter(r);
    }

    ngx_http_dynroute_each_header(&r->headers_out.headers,
        [](ngx_table_elt_t &h) {

        if (h.hash
            && dynroute::cors::owns_header(ngx_http_dynroute_view(h.key)))
        {
            h.hash = 0;
        }
    });

    if (ngx_http_dynroute_cors_write(r, d) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


/* the method, the CORS request headers and the response's Vary */

static void
ngx_http_dynroute_cors_read(ngx_http_request_t *r,
    dynroute::cors::Request *in) noexcept
{
    in->method = ngx_http_dynroute_view(r->method_name);
    in->main = (r == r->main);

    ngx_http_dynroute_each_header(&r->headers_in.headers,
        [in](ngx_table_elt_t &h) {

        in->header(ngx_http_dynroute_view(h.key),
                   ngx_http_dynroute_view(h.value));
    });

    ngx_http_dynroute_each_header(&r->headers_out.headers,
        [in](ngx_table_elt_t &h) {

        if (h.hash && ngx_http_dynroute_header_is(h, "Vary")) {
            in->vary(ngx_http_dynroute_view(h.value));
        }
    });
}


/* the headers the policy gives, in this order, each once */

static ngx_int_t
ngx_http_dynroute_cors_write(ngx_http_request_t *r,
    const dynroute::cors::Decision &d) noexcept
{
    static ngx_str_t  names[] = {
        ngx_string("Vary"),
        ngx_string("Access-Control-Allow-Origin"),
        ngx_string("Access-Control-Allow-Credentials"),
        ngx_string("Access-Control-Allow-Methods"),
        ngx_string("Access-Control-Allow-Headers"),
        ngx_string("Access-Control-Max-Age")
    };

    const std::string_view  values[] = {
        d.vary, d.allow_origin, d.allow_credentials, d.allow_methods,
        d.allow_headers, d.max_age
    };

    ngx_uint_t        i;
    ngx_str_t         value;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {

        if (values[i].empty()) {
            continue;
        }

        value.len = values[i].size();
        value.data = reinterpret_cast<u_char *>(
                         const_cast<char *>(values[i].data()));

        if (ngx_http_dynroute_add_header(r, names[i], value) == NULL) {
            return NGX_ERROR;
        }
    }

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
    ngx_http_dynroute_cors_loc_conf_t *colcf =
        static_cast<ngx_http_dynroute_cors_loc_conf_t *>(conf);

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_dynroute_cors_origins_t  *origins;

    if (colcf->origins != NGX_CONF_UNSET_PTR) {
        return const_cast<char *>("is duplicate");
    }

    value = static_cast<ngx_str_t *>(cf->args->elts);

    origins = ngx_http_dynroute_conf_new<ngx_http_dynroute_cors_origins_t>(
                  cf, "dynroute_cors");
    if (origins == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    try {
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

    colcf->origins = origins;

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
    dynroute::cors::TokenList        *tokens, **field;

    field = reinterpret_cast<dynroute::cors::TokenList **>(
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

            tokens->add(ngx_http_dynroute_view(value[i]));

        } catch (const dynroute::ConfigError &e) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid %s \"%V\": %s",
                               headers ? "header" : "method", &value[i],
                               e.what());
            return NGX_HTTP_DYNROUTE_CONF_ERROR;

        } catch (...) {
            return ngx_http_dynroute_conf_caught(cf, "dynroute_cors");
        }
    }

    *field = tokens;

    return NGX_CONF_OK;
}


static char *
ngx_http_dynroute_cors_max_age(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_http_dynroute_cors_loc_conf_t *colcf =
        static_cast<ngx_http_dynroute_cors_loc_conf_t *>(conf);

    u_char     *p;
    ngx_int_t   sec;
    ngx_str_t  *value;

    if (colcf->max_age.data) {
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

    colcf->max_age.data = p;
    colcf->max_age.len = ngx_sprintf(p, "%i", sec) - p;

    return NGX_CONF_OK;
}


static dynroute::cors::TokenList *
ngx_http_dynroute_cors_new_tokens(ngx_conf_t *cf, bool caseless) noexcept
{
    return ngx_http_dynroute_conf_new<dynroute::cors::TokenList>(cf,
               "dynroute_cors", caseless);
}


/* the location's policy, from its merged settings */

static dynroute::cors::Policy *
ngx_http_dynroute_cors_new_policy(ngx_conf_t *cf,
    ngx_http_dynroute_cors_loc_conf_t *conf) noexcept
{
    dynroute::cors::Settings  s;

    try {
        s.enabled = (conf->enable.value == 1);
        s.origins = conf->origins->list;
        s.methods = *conf->methods;
        s.headers = *conf->headers;
        s.credentials = (conf->credentials.value == 1);
        s.max_age.assign(reinterpret_cast<char *>(conf->max_age.data),
                         conf->max_age.len);

    } catch (...) {
        (void) ngx_http_dynroute_conf_caught(cf, "dynroute_cors");
        return NULL;
    }

    return ngx_http_dynroute_conf_new<dynroute::cors::Policy>(cf,
               "dynroute_cors", std::move(s));
}


static void *
ngx_http_dynroute_cors_create_main_conf(ngx_conf_t *cf) noexcept
{
    static ngx_str_t  get = ngx_string("GET");
    static ngx_str_t  post = ngx_string("POST");

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
        cmcf->default_methods->add(ngx_http_dynroute_view(get));
        cmcf->default_methods->add(ngx_http_dynroute_view(post));

    } catch (...) {
        (void) ngx_http_dynroute_conf_caught(cf, "dynroute_cors");
        return NULL;
    }

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
     *     conf->policy = NULL;
     */

    conf->enable.value = NGX_CONF_UNSET;
    conf->credentials.value = NGX_CONF_UNSET;
    conf->origins = static_cast<ngx_http_dynroute_cors_origins_t *>(
                        NGX_CONF_UNSET_PTR);
    conf->methods = static_cast<dynroute::cors::TokenList *>(
                        NGX_CONF_UNSET_PTR);
    conf->headers = static_cast<dynroute::cors::TokenList *>(
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

    if (conf->enable.value != 1) {
        return NGX_CONF_OK;
    }

    /* parents are merged first: share the policy when nothing changed */

    if (prev->policy
        && conf->origins == prev->origins
        && conf->methods == prev->methods
        && conf->headers == prev->headers
        && conf->credentials.value == prev->credentials.value
        && ngx_http_dynroute_eq(conf->max_age, prev->max_age))
    {
        conf->policy = prev->policy;
        return NGX_CONF_OK;
    }

    conf->policy = ngx_http_dynroute_cors_new_policy(cf, conf);
    if (conf->policy == NULL) {
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
