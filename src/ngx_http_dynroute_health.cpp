/*
 * dynroute_health: the liveness answer of the original router service,
 * 200 with the JSON string "i am alive" for GET, HEAD and POST, to clients
 * only (a subrequest gets 403).  "dynroute_health readiness": 200 with
 * {"ready":true}, or 503 with {"ready":false} while the runtime API has
 * this instance draining.
 */

#include "ngx_http_dynroute_health.hpp"
#include "ngx_http_dynroute_live.hpp"
#include "ngx_http_dynroute_reply.hpp"


static ngx_int_t ngx_http_dynroute_health_handler(ngx_http_request_t *r)
    noexcept;


static ngx_str_t  ngx_http_dynroute_allow = ngx_string("Allow");
static ngx_str_t  ngx_http_dynroute_allow_methods =
    ngx_string("GET, HEAD, POST");

static u_char  ngx_http_dynroute_alive[] = "\"i am alive\"";
static u_char  ngx_http_dynroute_ready[] = "{\"ready\":true}";
static u_char  ngx_http_dynroute_draining[] = "{\"ready\":false}";


char *
ngx_http_dynroute_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_http_dynroute_loc_conf_t *dlcf =
        static_cast<ngx_http_dynroute_loc_conf_t *>(conf);

    ngx_str_t                      *value;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_dynroute_where_t      *where;
    ngx_http_dynroute_main_conf_t  *dmcf;

    if (dlcf->health) {
        return const_cast<char *>("is duplicate");
    }

    dlcf->health = NGX_HTTP_DYNROUTE_HEALTH_LIVENESS;

    if (cf->args->nelts == 2) {
        value = static_cast<ngx_str_t *>(cf->args->elts);

        if (!ngx_http_dynroute_is(value[1], "readiness")) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\": dynroute_health "
                               "takes nothing or \"readiness\"", &value[1]);
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }

        dlcf->health = NGX_HTTP_DYNROUTE_HEALTH_READINESS;

        dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
                   ngx_http_conf_get_module_main_conf(cf,
                                                      ngx_http_dynroute_module));
        where = static_cast<ngx_http_dynroute_where_t *>(
                    ngx_array_push(&dmcf->readiness));
        if (where == NULL) {
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }

        where->file = cf->conf_file->file.name.data;
        where->line = cf->conf_file->line;
    }

    clcf = static_cast<ngx_http_core_loc_conf_t *>(
               ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    clcf->handler = ngx_http_dynroute_health_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_dynroute_health_handler(ngx_http_request_t *r) noexcept
{
    u_char                         *body;
    size_t                          len;
    ngx_int_t                       rc;
    ngx_http_dynroute_loc_conf_t   *dlcf;
    ngx_http_dynroute_main_conf_t  *dmcf;

    /*
     * A probe is a client's request.  A subrequest pointed at a health
     * location (auth_request, mirror, SSI) would otherwise get a 200 that
     * grants whatever it guards.
     */

    if (!ngx_http_dynroute_from_client(r, "dynroute_health")) {
        return NGX_HTTP_FORBIDDEN;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST))) {
        if (ngx_http_dynroute_add_header(r, ngx_http_dynroute_allow,
                                         ngx_http_dynroute_allow_methods)
            == NULL)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    dlcf = static_cast<ngx_http_dynroute_loc_conf_t *>(
               ngx_http_get_module_loc_conf(r, ngx_http_dynroute_module));

    r->headers_out.status = NGX_HTTP_OK;
    body = ngx_http_dynroute_alive;
    len = sizeof(ngx_http_dynroute_alive) - 1;

    if (dlcf->health == NGX_HTTP_DYNROUTE_HEALTH_READINESS) {
        dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
                   ngx_http_get_module_main_conf(r, ngx_http_dynroute_module));

        if (ngx_http_dynroute_live_draining(dmcf->live)) {
            r->headers_out.status = NGX_HTTP_SERVICE_UNAVAILABLE;
            body = ngx_http_dynroute_draining;
            len = sizeof(ngx_http_dynroute_draining) - 1;

        } else {
            body = ngx_http_dynroute_ready;
            len = sizeof(ngx_http_dynroute_ready) - 1;
        }
    }

    return ngx_http_dynroute_send(r, r->headers_out.status,
                                  "application/json",
                                  std::string_view(
                                      reinterpret_cast<char *>(body), len),
                                  false);
}
