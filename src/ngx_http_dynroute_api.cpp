/*
 * dynroute_api [write=on|off]: the runtime API, JSON under the location's
 * prefix.  What each call does to the state is the core's (state.hpp); the
 * zone glue publishes it (ngx_http_dynroute_zone.cpp); this file maps
 * methods and paths to calls and answers HTTP.
 *
 *   GET    {prefix}                  the whole state
 *   GET    {prefix}rollouts/NAME     one rollout
 *   PATCH  {prefix}rollouts/NAME     weights, upstreams, primary
 *   DELETE {prefix}rollouts/NAME     back to the configured values
 *   POST   {prefix}rollouts/NAME/ramp  start, pause, resume, abort its ramp
 *   GET    {prefix}hosts             the runtime hosts
 *   PATCH  {prefix}hosts             many runtime hosts, all or nothing
 *   GET    {prefix}hosts/HOST        one runtime host
 *   PUT    {prefix}hosts/HOST        add or replace it
 *   DELETE {prefix}hosts/HOST        remove it
 *   POST   {prefix}drain, {prefix}ready
 *   GET    {prefix}fleet, PUT        the fleet agent's report
 *   GET    {prefix}upstreams         the groups: dynroute_servers upstreams
 *                                    and runtime services
 *   GET    {prefix}upstreams/NAME/servers       its servers
 *   PUT, PATCH, POST                            the whole list, many, one
 *   DELETE                                      back to its "server" lines
 *   GET    {prefix}upstreams/NAME/servers/ADDR  one server (ADDR percent-
 *   PUT, PATCH, DELETE                          encoded where it must be)
 *   GET    {prefix}services, GET, PUT, DELETE {prefix}services/NAME
 *   GET    {prefix}metrics, {prefix}stats, {prefix}ui
 *
 * Before any of it, the checks against web pages that an operator's
 * browser opens (dynroute::ApiAccess): the Host must be one of the API's
 * names, an Origin must be its own or a listed one, and a write must be
 * JSON.  A location with only= serves the metrics or the status page
 * alone, read-only, without those checks: what it shows is no secret of
 * the routing.
 */

#include <string>

#include "ngx_http_dynroute_api.hpp"
#include "ngx_http_dynroute_guard.hpp"
#include "ngx_http_dynroute_live.hpp"
#include "ngx_http_dynroute_metrics.hpp"
#include "ngx_http_dynroute_ramp.hpp"
#include "ngx_http_dynroute_reply.hpp"
#include "ngx_stream_dynroute_metrics.hpp"
#include "api_access.hpp"
#include "metrics.hpp"
#include "ramp.hpp"
#include "status_page.hpp"
#include "state.hpp"


/* a body larger than this is refused with 413 */
#define NGX_HTTP_DYNROUTE_API_BODY_MAX  (1024 * 1024)


/* what "only=" lets a location serve */
#define NGX_HTTP_DYNROUTE_ONLY_METRICS  0x01
#define NGX_HTTP_DYNROUTE_ONLY_STATUS   0x02


/* A "dynroute_api" location. */
struct ngx_http_dynroute_api_conf_t {
    ngx_http_core_loc_conf_t      *clcf;
    ngx_http_core_srv_conf_t      *cscf;     /* its server's names */
    ngx_flag_t                     write;    /* write=on */
    ngx_uint_t                     only;     /* NGX_HTTP_DYNROUTE_ONLY_*; 0:
                                                the whole API */
    dynroute::ApiAccess           *access;
    u_char                        *file;
    ngx_uint_t                     line;
};


enum ngx_http_dynroute_resource_e {
    NGX_HTTP_DYNROUTE_RES_NONE,
    NGX_HTTP_DYNROUTE_RES_ROOT,
    NGX_HTTP_DYNROUTE_RES_ROLLOUT,
    NGX_HTTP_DYNROUTE_RES_HOSTS,
    NGX_HTTP_DYNROUTE_RES_HOST,
    NGX_HTTP_DYNROUTE_RES_DRAIN,
    NGX_HTTP_DYNROUTE_RES_READY,
    NGX_HTTP_DYNROUTE_RES_FLEET,
    NGX_HTTP_DYNROUTE_RES_UPSTREAMS,
    NGX_HTTP_DYNROUTE_RES_SERVERS,
    NGX_HTTP_DYNROUTE_RES_SERVER,
    NGX_HTTP_DYNROUTE_RES_SERVICES,
    NGX_HTTP_DYNROUTE_RES_SERVICE,
    NGX_HTTP_DYNROUTE_RES_RAMP,
    NGX_HTTP_DYNROUTE_RES_METRICS,      /* these three and after: read by
                                           ngx_http_dynroute_api_metrics */
    NGX_HTTP_DYNROUTE_RES_STATS,
    NGX_HTTP_DYNROUTE_RES_UI
};


/* the methods each resource takes, reading and writing */

typedef struct {
    ngx_uint_t   resource;  /* NGX_HTTP_DYNROUTE_RES_* */
    ngx_uint_t   read;
    ngx_uint_t   write;
    const char  *allow;
} ngx_http_dynroute_api_methods_t;


static const ngx_http_dynroute_api_methods_t  ngx_http_dynroute_methods[] = {
    { NGX_HTTP_DYNROUTE_RES_NONE, 0, 0, "" },
    { NGX_HTTP_DYNROUTE_RES_ROOT, NGX_HTTP_GET|NGX_HTTP_HEAD, 0,
      "GET, HEAD" },
    { NGX_HTTP_DYNROUTE_RES_ROLLOUT, NGX_HTTP_GET|NGX_HTTP_HEAD,
      NGX_HTTP_PATCH|NGX_HTTP_DELETE, "GET, HEAD, PATCH, DELETE" },
    { NGX_HTTP_DYNROUTE_RES_HOSTS, NGX_HTTP_GET|NGX_HTTP_HEAD,
      NGX_HTTP_PATCH, "GET, HEAD, PATCH" },
    { NGX_HTTP_DYNROUTE_RES_HOST, NGX_HTTP_GET|NGX_HTTP_HEAD,
      NGX_HTTP_PUT|NGX_HTTP_DELETE, "GET, HEAD, PUT, DELETE" },
    { NGX_HTTP_DYNROUTE_RES_DRAIN, 0, NGX_HTTP_POST, "POST" },
    { NGX_HTTP_DYNROUTE_RES_READY, 0, NGX_HTTP_POST, "POST" },
    { NGX_HTTP_DYNROUTE_RES_FLEET, NGX_HTTP_GET|NGX_HTTP_HEAD, NGX_HTTP_PUT,
      "GET, HEAD, PUT" },
    { NGX_HTTP_DYNROUTE_RES_UPSTREAMS, NGX_HTTP_GET|NGX_HTTP_HEAD, 0,
      "GET, HEAD" },
    { NGX_HTTP_DYNROUTE_RES_SERVERS, NGX_HTTP_GET|NGX_HTTP_HEAD,
      NGX_HTTP_PUT|NGX_HTTP_PATCH|NGX_HTTP_POST|NGX_HTTP_DELETE,
      "GET, HEAD, PUT, PATCH, POST, DELETE" },
    { NGX_HTTP_DYNROUTE_RES_SERVER, NGX_HTTP_GET|NGX_HTTP_HEAD,
      NGX_HTTP_PUT|NGX_HTTP_PATCH|NGX_HTTP_DELETE,
      "GET, HEAD, PUT, PATCH, DELETE" },
    { NGX_HTTP_DYNROUTE_RES_SERVICES, NGX_HTTP_GET|NGX_HTTP_HEAD, 0,
      "GET, HEAD" },
    { NGX_HTTP_DYNROUTE_RES_SERVICE, NGX_HTTP_GET|NGX_HTTP_HEAD,
      NGX_HTTP_PUT|NGX_HTTP_DELETE, "GET, HEAD, PUT, DELETE" },
    { NGX_HTTP_DYNROUTE_RES_METRICS, NGX_HTTP_GET|NGX_HTTP_HEAD, 0,
      "GET, HEAD" },
    { NGX_HTTP_DYNROUTE_RES_STATS, NGX_HTTP_GET|NGX_HTTP_HEAD, 0,
      "GET, HEAD" },
    { NGX_HTTP_DYNROUTE_RES_UI, NGX_HTTP_GET|NGX_HTTP_HEAD, 0, "GET, HEAD" },
    { NGX_HTTP_DYNROUTE_RES_RAMP, NGX_HTTP_GET|NGX_HTTP_HEAD, NGX_HTTP_POST,
      "GET, HEAD, POST" }
};


static const ngx_http_dynroute_api_methods_t &
ngx_http_dynroute_api_methods(ngx_uint_t resource) noexcept
{
    for (const auto &m : ngx_http_dynroute_methods) {
        if (m.resource == resource) {
            return m;
        }
    }

    return ngx_http_dynroute_methods[0];
}


/* the headers of the API's answers */
static ngx_str_t  ngx_http_dynroute_api_cache_control =
    ngx_string("Cache-Control");
static ngx_str_t  ngx_http_dynroute_api_no_store = ngx_string("no-store");
static ngx_str_t  ngx_http_dynroute_api_allow = ngx_string("Allow");
static ngx_str_t  ngx_http_dynroute_api_retry_after =
    ngx_string("Retry-After");
static ngx_str_t  ngx_http_dynroute_api_one = ngx_string("1");
static ngx_str_t  ngx_http_dynroute_api_etag = ngx_string("ETag");
static ngx_str_t  ngx_http_dynroute_api_csp =
    ngx_string("Content-Security-Policy");
static ngx_str_t  ngx_http_dynroute_api_csp_value = ngx_string(
    "default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
    "frame-ancestors 'none'");


static ngx_int_t ngx_http_dynroute_api_handler(ngx_http_request_t *r)
    noexcept;
static void ngx_http_dynroute_api_body(ngx_http_request_t *r) noexcept;


/* one parameter of "dynroute_api"; NGX_CONF_OK, or the error logged */

static char *
ngx_http_dynroute_api_param(ngx_conf_t *cf, ngx_http_dynroute_api_conf_t *api,
    ngx_str_t *v) noexcept
{
    static const struct {
        const char  *param;
        ngx_uint_t   only;
    } onlies[] = {
        { "only=metrics", NGX_HTTP_DYNROUTE_ONLY_METRICS },
        { "only=status", NGX_HTTP_DYNROUTE_ONLY_STATUS },
        { "only=metrics,status",
          NGX_HTTP_DYNROUTE_ONLY_METRICS|NGX_HTTP_DYNROUTE_ONLY_STATUS },
        { "only=status,metrics",
          NGX_HTTP_DYNROUTE_ONLY_METRICS|NGX_HTTP_DYNROUTE_ONLY_STATUS },
    };

    if (ngx_http_dynroute_is(*v, "write=on")
        || ngx_http_dynroute_is(*v, "write=off"))
    {
        api->write = ngx_http_dynroute_is(*v, "write=on");
        return NGX_CONF_OK;
    }

    for (const auto &o : onlies) {
        if (ngx_http_dynroute_is(*v, o.param)) {
            api->only = o.only;
            return NGX_CONF_OK;
        }
    }

    try {
        if (v->len > 5 && ngx_strncmp(v->data, "host=", 5) == 0) {
            api->access->add_host(ngx_http_dynroute_view(*v).substr(5));
            return NGX_CONF_OK;
        }

        if (v->len > 7 && ngx_strncmp(v->data, "origin=", 7) == 0) {
            api->access->add_origin(ngx_http_dynroute_view(*v).substr(7));
            return NGX_CONF_OK;
        }

    } catch (const dynroute::ConfigError &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s in \"%V\" of dynroute_api", e.what(), v);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute_api");
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\": dynroute_api takes "
                       "write=on|off, only=metrics|status|metrics,status, "
                       "host=NAME and origin=ORIGIN", v);
    return NGX_HTTP_DYNROUTE_CONF_ERROR;
}


/*
 * The location "dynroute_api" serves: the resource is what the URI has
 * after the location's prefix.  A regex or a named location has no prefix;
 * an exact one has nothing after it, so it can serve one thing, the
 * metrics.
 */

static char *
ngx_http_dynroute_api_location(ngx_conf_t *cf,
    ngx_http_dynroute_api_conf_t *api, ngx_http_core_loc_conf_t *clcf)
    noexcept
{
    if (api->only && api->write) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "dynroute_api with only= is read-only: drop "
                           "write=on, or serve the whole API in a location "
                           "of its own");
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    if (clcf->named
#if (NGX_PCRE)
        || clcf->regex
#endif
       )
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "dynroute_api needs a prefix location, like "
                           "\"location /dynroute/\"");
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    if (clcf->exact_match && api->only != NGX_HTTP_DYNROUTE_ONLY_METRICS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "dynroute_api in the exact location \"= %V\" can "
                           "serve the metrics alone: add only=metrics, or "
                           "use a prefix location like \"location "
                           "/dynroute/\" (the status page needs one too: it "
                           "loads {prefix}stats)", &clcf->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * "dynroute_api [write=on|off] [only=metrics|status|metrics,status]
 * [host=NAME]... [origin=ORIGIN]..."
 */

char *
ngx_http_dynroute_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_http_dynroute_loc_conf_t *dlcf =
        static_cast<ngx_http_dynroute_loc_conf_t *>(conf);

    char                           *rv;
    ngx_str_t                      *value;
    ngx_uint_t                      i;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_dynroute_api_conf_t   *api, **ap;
    ngx_http_dynroute_main_conf_t  *dmcf;

    if (dlcf->api) {
        return const_cast<char *>("is duplicate");
    }

    value = static_cast<ngx_str_t *>(cf->args->elts);

    api = static_cast<ngx_http_dynroute_api_conf_t *>(
              ngx_pcalloc(cf->pool, sizeof(ngx_http_dynroute_api_conf_t)));
    if (api == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    api->access = ngx_http_dynroute_conf_new<dynroute::ApiAccess>(cf,
                      "dynroute_api");
    if (api->access == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        rv = ngx_http_dynroute_api_param(cf, api, &value[i]);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    clcf = static_cast<ngx_http_core_loc_conf_t *>(
               ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));

    rv = ngx_http_dynroute_api_location(cf, api, clcf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    clcf->handler = ngx_http_dynroute_api_handler;

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(cf, ngx_http_dynroute_module));

    ap = static_cast<ngx_http_dynroute_api_conf_t **>(
             ngx_array_push(&dmcf->apis));
    if (ap == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    api->clcf = clcf;
    api->cscf = static_cast<ngx_http_core_srv_conf_t *>(
                    ngx_http_conf_get_module_srv_conf(cf,
                                                      ngx_http_core_module));
    api->file = cf->conf_file->file.name.data;
    api->line = cf->conf_file->line;
    *ap = api;
    dlcf->api = api;

    return NGX_CONF_OK;
}


/* the exact names of the API's server{}: names the Host may carry */

static void
ngx_http_dynroute_api_server_names(ngx_http_dynroute_api_conf_t *api)
{
    ngx_uint_t                 i;
    ngx_http_server_name_t    *sn;

    sn = static_cast<ngx_http_server_name_t *>(
             api->cscf->server_names.elts);

    for (i = 0; i < api->cscf->server_names.nelts; i++) {
#if (NGX_PCRE)
        if (sn[i].regex) {
            continue;
        }
#endif

        try {
            api->access->add_host(ngx_http_dynroute_view(sn[i].name));

        } catch (const dynroute::ConfigError &) {
            /* a wildcard, "_" or "": matches no one name */
        }
    }
}


ngx_int_t
ngx_http_dynroute_api_check(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_uint_t                      i;
    ngx_http_dynroute_where_t      *where;
    ngx_http_dynroute_api_conf_t  **ap;

    ap = static_cast<ngx_http_dynroute_api_conf_t **>(dmcf->apis.elts);

    for (i = 0; i < dmcf->apis.nelts; i++) {
        if (dmcf->zone == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "dynroute_api in %s:%ui needs a dynroute_zone in "
                          "the http{} block", ap[i]->file, ap[i]->line);
            return NGX_ERROR;
        }

        try {
            ngx_http_dynroute_api_server_names(ap[i]);

        } catch (...) {
            (void) ngx_http_dynroute_conf_caught(cf, "dynroute_api");
            return NGX_ERROR;
        }

        /* the API reads its own bodies, up to its own limit (a JSON 413) */

        if (ap[i]->clcf->client_max_body_size
            <= NGX_HTTP_DYNROUTE_API_BODY_MAX)
        {
            ap[i]->clcf->client_max_body_size =
                2 * NGX_HTTP_DYNROUTE_API_BODY_MAX;
        }

    }

    if (dmcf->readiness.nelts && dmcf->zone == NULL) {
        where = static_cast<ngx_http_dynroute_where_t *>(
                    dmcf->readiness.elts);

        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dynroute_health readiness\" needs a dynroute_zone "
                      "in the http{} block: draining is runtime state, in "
                      "%s:%ui", where->file, where->line);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* request time */


#define NGX_HTTP_DYNROUTE_NO_ETAG  (~0ULL)   /* api_send: no ETag */


static ngx_int_t
ngx_http_dynroute_api_send(ngx_http_request_t *r, ngx_int_t status,
    std::string_view body, uint64_t generation, const char *allow,
    const char *type = "application/json") noexcept
{
    ngx_str_t  etag;

    if (ngx_http_dynroute_add_header(r, ngx_http_dynroute_api_cache_control,
                                     ngx_http_dynroute_api_no_store)
        == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (allow) {
        ngx_str_t  methods = { ngx_strlen(allow),
                               reinterpret_cast<u_char *>(
                                   const_cast<char *>(allow)) };

        if (ngx_http_dynroute_add_header(r, ngx_http_dynroute_api_allow,
                                         methods)
            == NULL)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /* a change refused by a worker of the previous configuration */

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE
        && ngx_http_dynroute_add_header(r, ngx_http_dynroute_api_retry_after,
                                        ngx_http_dynroute_api_one)
           == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the state's generation: not for the counters, which change anyway */

    if (status < NGX_HTTP_SPECIAL_RESPONSE
        && generation != NGX_HTTP_DYNROUTE_NO_ETAG)
    {
        etag.data = static_cast<u_char *>(ngx_pnalloc(r->pool,
                                                      NGX_INT64_LEN + 2));
        if (etag.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        etag.len = ngx_sprintf(etag.data, "\"%uL\"", generation) - etag.data;

        if (ngx_http_dynroute_add_header(r, ngx_http_dynroute_api_etag, etag)
            == NULL)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_dynroute_send(r, status, type, body, true);
}


static ngx_int_t
ngx_http_dynroute_api_error(ngx_http_request_t *r, ngx_int_t status,
    const std::string &message, const char *allow = NULL) noexcept
{
    try {
        return ngx_http_dynroute_api_send(r, status,
                                          dynroute::render_error(message), 0,
                                          allow);
    } catch (...) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


/*
 * Which resource the URI names, and its NAME part: what follows the
 * location's prefix, after a '/' (so that "location /pub" serves /pub/hosts
 * but not /pubhosts).  A location with only= serves what it names, its
 * status page at the prefix itself; an exact location, the metrics.
 */

static ngx_uint_t
ngx_http_dynroute_api_resource(ngx_http_request_t *r,
    ngx_http_dynroute_api_conf_t *api, std::string_view &name,
    std::string_view &addr, std::string_view *ns = NULL) noexcept
{
    ngx_uint_t  res;

    std::string_view uri = ngx_http_dynroute_view(r->uri);
    std::string_view prefix = ngx_http_dynroute_view(api->clcf->name);

    if (api->clcf->exact_match) {
        return (uri == prefix) ? NGX_HTTP_DYNROUTE_RES_METRICS
                               : NGX_HTTP_DYNROUTE_RES_NONE;
    }

    if (uri.substr(0, prefix.size()) != prefix) {
        return NGX_HTTP_DYNROUTE_RES_NONE;
    }

    uri.remove_prefix(prefix.size());

    if (!uri.empty() && (prefix.empty() || prefix.back() != '/')) {
        if (uri.front() != '/') {
            return NGX_HTTP_DYNROUTE_RES_NONE;
        }

        uri.remove_prefix(1);
    }

    res = NGX_HTTP_DYNROUTE_RES_NONE;

    /*
     * stream/: stream{}'s tables, hosts and rollouts, the same resources
     * in the stream namespace (dynroute::stream_ns)
     */

    if (uri.substr(0, 6) == "stream" && api->only == 0
        && (uri.size() == 6 || uri[6] == '/'))
    {
        uri.remove_prefix(uri.size() == 6 ? 6 : 7);

        if (ns) {
            *ns = dynroute::stream_ns;
        }

        if (uri.empty()) {
            return NGX_HTTP_DYNROUTE_RES_ROOT;
        }

        if (uri == "hosts" || uri == "hosts/") {
            return NGX_HTTP_DYNROUTE_RES_HOSTS;
        }

        for (auto [word, r] : { std::pair<std::string_view, ngx_uint_t>
                                {"rollouts/", NGX_HTTP_DYNROUTE_RES_ROLLOUT},
                                {"hosts/", NGX_HTTP_DYNROUTE_RES_HOST} })
        {
            if (uri.substr(0, word.size()) == word) {
                name = uri.substr(word.size());

                if (!name.empty()
                    && name.find('/') == std::string_view::npos)
                {
                    return r;
                }
            }
        }

        return NGX_HTTP_DYNROUTE_RES_NONE;
    }

    if (uri.empty()) {
        res = NGX_HTTP_DYNROUTE_RES_ROOT;

    } else if (uri == "drain") {
        res = NGX_HTTP_DYNROUTE_RES_DRAIN;

    } else if (uri == "ready") {
        res = NGX_HTTP_DYNROUTE_RES_READY;

    } else if (uri == "fleet") {
        res = NGX_HTTP_DYNROUTE_RES_FLEET;

    } else if (uri == "metrics") {
        res = NGX_HTTP_DYNROUTE_RES_METRICS;

    } else if (uri == "stats") {
        res = NGX_HTTP_DYNROUTE_RES_STATS;

    } else if (uri == "ui") {
        res = NGX_HTTP_DYNROUTE_RES_UI;

    } else if (uri == "hosts" || uri == "hosts/") {
        res = NGX_HTTP_DYNROUTE_RES_HOSTS;

    } else if (uri == "upstreams" || uri == "upstreams/") {
        res = NGX_HTTP_DYNROUTE_RES_UPSTREAMS;

    } else if (uri == "services" || uri == "services/") {
        res = NGX_HTTP_DYNROUTE_RES_SERVICES;

    } else if (uri.substr(0, 10) == "upstreams/") {

        /*
         * upstreams/NAME/servers[/ADDR]: r->uri is percent-decoded, so a
         * unix: address brings its slashes; the address is the rest.
         */

        uri.remove_prefix(10);
        size_t slash = uri.find('/');

        if (slash != 0 && slash != std::string_view::npos) {
            name = uri.substr(0, slash);
            uri.remove_prefix(slash + 1);

            if (uri == "servers" || uri == "servers/") {
                res = NGX_HTTP_DYNROUTE_RES_SERVERS;

            } else if (uri.size() > 8 && uri.substr(0, 8) == "servers/") {
                addr = uri.substr(8);
                res = NGX_HTTP_DYNROUTE_RES_SERVER;
            }
        }

    } else if (uri.size() > 14 && uri.substr(0, 9) == "rollouts/"
               && uri.substr(uri.size() - 5) == "/ramp"
               && uri.substr(9, uri.size() - 14).find('/')
                  == std::string_view::npos)
    {
        name = uri.substr(9, uri.size() - 14);
        res = NGX_HTTP_DYNROUTE_RES_RAMP;

    } else {
        for (auto [word, r] : { std::pair<std::string_view, ngx_uint_t>
                                {"rollouts/", NGX_HTTP_DYNROUTE_RES_ROLLOUT},
                                {"hosts/", NGX_HTTP_DYNROUTE_RES_HOST},
                                {"services/", NGX_HTTP_DYNROUTE_RES_SERVICE} })
        {
            if (uri.substr(0, word.size()) == word) {
                name = uri.substr(word.size());

                if (!name.empty()
                    && name.find('/') == std::string_view::npos)
                {
                    res = r;
                }
            }
        }
    }

    if (api->only == 0) {
        return res;
    }

    /* only=: the metrics, the status page (at the prefix too) */

    switch (res) {

    case NGX_HTTP_DYNROUTE_RES_METRICS:
        return (api->only & NGX_HTTP_DYNROUTE_ONLY_METRICS)
               ? res : static_cast<ngx_uint_t>(NGX_HTTP_DYNROUTE_RES_NONE);

    case NGX_HTTP_DYNROUTE_RES_ROOT:
        res = NGX_HTTP_DYNROUTE_RES_UI;
        /* fall through */

    case NGX_HTTP_DYNROUTE_RES_STATS:
    case NGX_HTTP_DYNROUTE_RES_UI:
        return (api->only & NGX_HTTP_DYNROUTE_ONLY_STATUS)
               ? res : static_cast<ngx_uint_t>(NGX_HTTP_DYNROUTE_RES_NONE);

    default:
        return NGX_HTTP_DYNROUTE_RES_NONE;
    }
}


/* If-Match: a generation, quoted or not; -1 without one; -2 if invalid */

static int64_t
ngx_http_dynroute_api_if_match(ngx_http_request_t *r) noexcept
{
    int64_t  g;

    /* the first If-Match header, as nginx keeps it */

    if (r->headers_in.if_match == NULL) {
        return -1;
    }

    std::string_view v = ngx_http_dynroute_view(r->headers_in.if_match->value);

    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
        v = v.substr(1, v.size() - 2);
    }

    if (v == "*") {
        return -1;
    }

    if (v.empty() || v.size() > 18) {
        return -2;
    }

    g = 0;

    for (char c : v) {
        if (c < '0' || c > '9') {
            return -2;
        }

        g = g * 10 + (c - '0');
    }

    return g;
}


/* the request body, read whole; false if it is over the limit */

static bool
ngx_http_dynroute_api_read_body(ngx_http_request_t *r, std::string &body)
{
    ngx_chain_t  *cl;

    if (r->request_body == NULL) {
        return true;
    }

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        ngx_buf_t *b = cl->buf;
        size_t n = ngx_buf_size(b);

        if (body.size() + n > NGX_HTTP_DYNROUTE_API_BODY_MAX) {
            return false;
        }

        if (ngx_buf_in_memory(b)) {
            body.append(reinterpret_cast<char *>(b->pos), n);
            continue;
        }

        if (b->in_file) {
            size_t at = body.size();
            body.resize(at + n);

            ssize_t got = ngx_read_file(b->file,
                              reinterpret_cast<u_char *>(&body[at]), n,
                              b->file_pos);
            if (got != static_cast<ssize_t>(n)) {
                throw std::runtime_error("cannot read the request body");
            }
        }
    }

    return true;
}


/*
 * One request to the API once its body is read: what the functions of each
 * resource need, and the two ways they reach the zone.  read() renders the
 * state as it is; write() changes it (ngx_http_dynroute_live_write) and
 * renders the result.  Both keep the generation rendered, for the ETag and
 * the log.
 */

struct ngx_http_dynroute_api_call_t {
    ngx_http_request_t          *r;
    ngx_http_dynroute_live_t    *live;
    const dynroute::Schema      &schema;
    std::string_view             name;      /* the resource's name; a
                                               rollout's with ns */
    std::string_view             addr;      /* a server's address */
    std::string_view             ns;        /* "", or stream/ */
    std::string                  body;      /* the request's */
    std::string                  answer;    /* the response's */
    uint64_t                     generation;
    int64_t                      if_match;  /* -1: none */
    bool                         get;       /* GET or HEAD */

    template <typename F>
    ngx_http_dynroute_render_t render(F f)
    {
        return [this, f](const dynroute::State &st) {
            generation = st.generation;
            return f(st);
        };
    }

    template <typename F>
    ngx_int_t read(F f)
    {
        return ngx_http_dynroute_live_read(live, render(f), answer);
    }

    template <typename C, typename F>
    ngx_int_t write(C change, F f)
    {
        return ngx_http_dynroute_live_write(live, r->connection->log,
                                            if_match, change, render(f),
                                            answer);
    }
};


/* /rollouts/NAME: GET, PATCH (weights, primary), DELETE (back to the
 * configuration's) */

static ngx_int_t
ngx_http_dynroute_api_rollout(ngx_http_dynroute_api_call_t &c)
{
    auto show = [&c](const dynroute::State &st) {
        return dynroute::render_rollout_change(st, c.schema, c.name);
    };

    if (c.get) {
        return c.read([&c](const dynroute::State &st) {
            /* with its guard's figures (ngx_http_dynroute_guard.cpp) and
             * its ramp's (ngx_http_dynroute_ramp.cpp) */
            return ngx_http_dynroute_guard_answer(
                       static_cast<ngx_http_dynroute_main_conf_t *>(
                           ngx_http_get_module_main_conf(c.r,
                               ngx_http_dynroute_module)),
                       c.name,
                       dynroute::render_rollout_ramp(st, c.schema, c.name,
                           ngx_http_dynroute_ramp_now()));
        });
    }

    if (c.r->method == NGX_HTTP_PATCH) {
        return c.write([&c](dynroute::State &st) {
            dynroute::patch_rollout(st, c.schema, c.name, c.body);
        }, show);
    }

    return c.write([&c](dynroute::State &st) {
        dynroute::reset_rollout(st, c.schema, c.name);
    }, show);
}


/* /rollouts/NAME/ramp: POST {"action": ...}; the answer, and GET, is the
 * rollout as GET rollouts/NAME shows it */

static ngx_int_t
ngx_http_dynroute_api_ramp(ngx_http_dynroute_api_call_t &c)
{
    uint64_t  now = ngx_http_dynroute_ramp_now();

    auto show = [&c, now](const dynroute::State &st) {
        return ngx_http_dynroute_guard_answer(
                   static_cast<ngx_http_dynroute_main_conf_t *>(
                       ngx_http_get_module_main_conf(c.r,
                           ngx_http_dynroute_module)),
                   c.name,
                   dynroute::render_rollout_ramp(st, c.schema, c.name, now));
    };

    if (c.get) {
        return c.read(show);
    }

    return c.write([&c, now](dynroute::State &st) {
        dynroute::ramp_action(st, c.schema, c.name, c.body, now);
    }, show);
}


/* /hosts: GET, PATCH (many at once) */

static ngx_int_t
ngx_http_dynroute_api_hosts(ngx_http_dynroute_api_call_t &c)
{
    dynroute::BulkResult  done;

    if (c.get) {
        return c.read([&c](const dynroute::State &st) {
            return dynroute::render_hosts(st, c.ns);
        });
    }

    return c.write([&](dynroute::State &st) {
        done = dynroute::patch_hosts(st, c.schema, c.body, c.ns);
    }, [&done](const dynroute::State &st) {
        return dynroute::render_bulk(st, done);
    });
}


/* /hosts/NAME: GET, PUT (201 when it is new), DELETE */

static ngx_int_t
ngx_http_dynroute_api_host(ngx_http_dynroute_api_call_t &c)
{
    ngx_int_t   status;
    ngx_uint_t  created;

    if (c.get) {
        return c.read([&c](const dynroute::State &st) {
            return dynroute::render_host(st, c.name, c.ns);
        });
    }

    if (c.r->method != NGX_HTTP_PUT) {
        return c.write([&c](dynroute::State &st) {
            dynroute::delete_host(st, c.name, c.ns);
        }, dynroute::render_generation);
    }

    created = 0;

    status = c.write([&](dynroute::State &st) {
        created = dynroute::put_host(st, c.schema, c.name, c.body, c.ns);
    }, dynroute::render_generation);

    return (status == NGX_HTTP_OK && created) ? NGX_HTTP_CREATED : status;
}


/*
 * /upstreams/NAME/servers: GET, PUT (the whole list), PATCH (many, null
 * removes), POST (one, 201; 409 if it is there), DELETE (back to the
 * "server" lines)
 */

static ngx_int_t
ngx_http_dynroute_api_servers(ngx_http_dynroute_api_call_t &c)
{
    ngx_int_t             status;
    std::string           added;
    dynroute::BulkResult  done;

    auto bulk = [&done](const dynroute::State &st) {
        return dynroute::render_bulk(st, done);
    };

    if (c.get) {
        return c.read([&c](const dynroute::State &st) {
            return dynroute::render_servers(st, c.schema, c.name);
        });
    }

    switch (c.r->method) {

    case NGX_HTTP_PUT:
        return c.write([&](dynroute::State &st) {
            done = dynroute::put_servers(st, c.schema, c.name, c.body);
        }, bulk);

    case NGX_HTTP_PATCH:
        return c.write([&](dynroute::State &st) {
            done = dynroute::patch_servers(st, c.schema, c.name, c.body);
        }, bulk);

    case NGX_HTTP_POST:
        status = c.write([&](dynroute::State &st) {
            added = dynroute::post_server(st, c.schema, c.name, c.body);
        }, [&](const dynroute::State &st) {
            return dynroute::render_server(st, c.schema, c.name, added);
        });

        return status == NGX_HTTP_OK ? NGX_HTTP_CREATED : status;

    default: /* DELETE */
        return c.write([&c](dynroute::State &st) {
            dynroute::reset_servers(st, c.schema, c.name);
        }, [&c](const dynroute::State &st) {
            return dynroute::render_servers(st, c.schema, c.name);
        });
    }
}


/* /upstreams/NAME/servers/ADDR: GET, PUT (201 when it is new), PATCH,
 * DELETE */

static ngx_int_t
ngx_http_dynroute_api_server(ngx_http_dynroute_api_call_t &c)
{
    ngx_int_t   status;
    ngx_uint_t  created;

    auto show = [&c](const dynroute::State &st) {
        return dynroute::render_server(st, c.schema, c.name, c.addr);
    };

    if (c.get) {
        return c.read(show);
    }

    switch (c.r->method) {

    case NGX_HTTP_PUT:
        created = 0;

        status = c.write([&](dynroute::State &st) {
            created = dynroute::put_server(st, c.schema, c.name, c.addr,
                                           c.body);
        }, show);

        return (status == NGX_HTTP_OK && created) ? NGX_HTTP_CREATED
                                                  : status;

    case NGX_HTTP_PATCH:
        return c.write([&c](dynroute::State &st) {
            dynroute::patch_server(st, c.schema, c.name, c.addr, c.body);
        }, show);

    default: /* DELETE */
        return c.write([&c](dynroute::State &st) {
            dynroute::delete_server(st, c.schema, c.name, c.addr);
        }, dynroute::render_generation);
    }
}


/* /services/NAME: GET, PUT (201 when it is new), DELETE */

static ngx_int_t
ngx_http_dynroute_api_service(ngx_http_dynroute_api_call_t &c)
{
    ngx_int_t   status;
    ngx_uint_t  created;

    auto show = [&c](const dynroute::State &st) {
        return dynroute::render_service(st, c.schema, c.name);
    };

    if (c.get) {
        return c.read(show);
    }

    if (c.r->method != NGX_HTTP_PUT) {
        return c.write([&c](dynroute::State &st) {
            dynroute::delete_service(st, c.schema, c.name);
        }, dynroute::render_generation);
    }

    created = 0;

    status = c.write([&](dynroute::State &st) {
        created = dynroute::put_service(st, c.schema, c.name, c.body);
    }, show);

    return (status == NGX_HTTP_OK && created) ? NGX_HTTP_CREATED : status;
}


/* the resources with a body: everything after the method and size checks */

static ngx_int_t
ngx_http_dynroute_api_run(ngx_http_request_t *r) noexcept
{
    ngx_int_t                       status;
    ngx_uint_t                      res;
    std::string                     full;
    std::string_view                name, addr, ns;
    ngx_http_dynroute_loc_conf_t   *dlcf;
    ngx_http_dynroute_main_conf_t  *dmcf;

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_get_module_main_conf(r, ngx_http_dynroute_module));
    dlcf = static_cast<ngx_http_dynroute_loc_conf_t *>(
               ngx_http_get_module_loc_conf(r, ngx_http_dynroute_module));

    ngx_http_dynroute_live_t *live = dmcf->live;
    ngx_str_t zone = ngx_http_dynroute_live_zone_name(live);

    res = ngx_http_dynroute_api_resource(r, dlcf->api, name, addr, &ns);

    try {
        /* a stream rollout's name in the state: with its prefix */

        if (!ns.empty() && res == NGX_HTTP_DYNROUTE_RES_ROLLOUT) {
            full = std::string(ns) + std::string(name);
            name = full;
        }

        ngx_http_dynroute_api_call_t c{r, live,
            ngx_http_dynroute_live_schema(live), name, addr, ns, {}, {}, 0,
            ngx_http_dynroute_api_if_match(r),
            (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) != 0};

        if (c.if_match == -2) {
            return ngx_http_dynroute_api_error(r, NGX_HTTP_BAD_REQUEST,
                       "If-Match must be a generation number");
        }

        /*
         * A write's If-Match is the generation it changes, checked here;
         * nginx's not_modified filter would compare it with the new one.
         */

        if (!c.get) {
            r->headers_in.if_match = NULL;
        }

        if (!ngx_http_dynroute_api_read_body(r, c.body)) {
            return ngx_http_dynroute_api_error(r,
                       NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                       "the request body is over the API's limit of 1 MiB");
        }

        switch (res) {

        case NGX_HTTP_DYNROUTE_RES_ROOT:
            status = c.read([&](const dynroute::State &st) {
                return dynroute::render_state(st, c.schema,
                                              ngx_http_dynroute_view(zone),
                                              c.ns);
            });
            break;

        case NGX_HTTP_DYNROUTE_RES_ROLLOUT:
            status = ngx_http_dynroute_api_rollout(c);
            break;

        case NGX_HTTP_DYNROUTE_RES_RAMP:
            status = ngx_http_dynroute_api_ramp(c);
            break;

        case NGX_HTTP_DYNROUTE_RES_HOSTS:
            status = ngx_http_dynroute_api_hosts(c);
            break;

        case NGX_HTTP_DYNROUTE_RES_HOST:
            status = ngx_http_dynroute_api_host(c);
            break;

        case NGX_HTTP_DYNROUTE_RES_UPSTREAMS:
            status = c.read([&c](const dynroute::State &st) {
                return dynroute::render_upstreams(st, c.schema);
            });
            break;

        case NGX_HTTP_DYNROUTE_RES_SERVERS:
            status = ngx_http_dynroute_api_servers(c);
            break;

        case NGX_HTTP_DYNROUTE_RES_SERVER:
            status = ngx_http_dynroute_api_server(c);
            break;

        case NGX_HTTP_DYNROUTE_RES_SERVICES:
            status = c.read([&c](const dynroute::State &st) {
                return dynroute::render_services(st, c.schema);
            });
            break;

        case NGX_HTTP_DYNROUTE_RES_SERVICE:
            status = ngx_http_dynroute_api_service(c);
            break;

        case NGX_HTTP_DYNROUTE_RES_FLEET:
            status = c.get ? c.read(dynroute::render_fleet)
                           : c.write([&c](dynroute::State &st) {
                                 dynroute::put_fleet(st, c.body);
                             }, dynroute::render_fleet);
            break;

        default: /* drain, ready */
            status = c.write([res](dynroute::State &st) {
                st.draining = (res == NGX_HTTP_DYNROUTE_RES_DRAIN);
            }, dynroute::render_generation);
        }

        if (status == NGX_HTTP_OK || status == NGX_HTTP_CREATED) {
            ngx_uint_t level = c.get ? NGX_LOG_INFO : NGX_LOG_NOTICE;

            ngx_log_error(level, r->connection->log, 0,
                          "dynroute: %V %V: generation %uL",
                          &r->method_name, &r->uri, c.generation);
        }

        return ngx_http_dynroute_api_send(r, status, c.answer, c.generation,
                                          NULL);

    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynroute: API: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


/*
 * The metrics and what the zone holds now: the counters
 * (ngx_http_dynroute_metrics.cpp), then the live values.  Throws.
 */

static void
ngx_http_dynroute_api_snapshot(ngx_http_dynroute_main_conf_t *dmcf,
    dynroute::metrics::Snapshot &s)
{
    size_t                         j;
    ngx_uint_t                     i;
    ngx_time_t                    *tp;
    std::string                    ignored;
    ngx_http_dynroute_route_t      route;
    ngx_http_dynroute_rollout_t  **rollouts;

    ngx_http_dynroute_metrics_read(dmcf, s);
    ngx_http_dynroute_live_groups(dmcf->live, s.groups);

    if (ngx_stream_dynroute_metrics_read != NULL) {
        ngx_stream_dynroute_metrics_read(dmcf->cycle, s);
    }

    ngx_http_dynroute_live_sync(dmcf->live);
    ngx_http_dynroute_live_status(dmcf->live, &s.generation, &s.draining,
                                  &s.runtime_hosts);

    s.zone = std::string(ngx_http_dynroute_view(
                             ngx_http_dynroute_live_zone_name(dmcf->live)));

    tp = ngx_timeofday();
    s.time = tp->sec + tp->msec / 1000.0;

    /* what a fleet agent reported: in the state */

    (void) ngx_http_dynroute_live_read(dmcf->live,
        [&](const dynroute::State &st) {
            s.fleet = st.fleet.set;
            s.fleet_revision = st.fleet.revision;
            s.fleet_stale = st.fleet.stale;

            /* the guards' trips in force, for the page */

            for (auto &ro : s.rollouts) {
                auto it = st.rollouts.find(ro.name);

                if (it != st.rollouts.end() && it->second.trip.tripped()) {
                    ro.tripped = it->second.trip.variant;
                    ro.tripped_reason = std::string(
                        dynroute::guard_reason_name(it->second.trip.reason));
                    ro.tripped_detail = it->second.trip.detail;
                }
            }

            return std::string();
        }, ignored);

    rollouts = static_cast<ngx_http_dynroute_rollout_t **>(
                   dmcf->rollouts.elts);

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        dynroute::metrics::RolloutStats &ro = s.rollouts[i];

        route = ngx_http_dynroute_live_route(dmcf->live, rollouts[i]);

        ro.primary = std::string(ngx_http_dynroute_view(
                         rollouts[i]->variants[route.split.primary].name));

        for (j = 0; j < ro.variants.size(); j++) {
            ro.variants[j].upstream = std::string(ngx_http_dynroute_view(
                                          route.upstreams[j]->host));
            ro.variants[j].weight = route.split.weights[j];
        }
    }
}


/* {prefix}metrics, {prefix}stats and the status page, {prefix}ui */

static ngx_int_t
ngx_http_dynroute_api_metrics(ngx_http_request_t *r, ngx_uint_t res) noexcept
{
    ngx_http_dynroute_main_conf_t  *dmcf;

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_get_module_main_conf(r, ngx_http_dynroute_module));

    if (dmcf->metrics == NGX_HTTP_DYNROUTE_METRICS_OFF) {
        return ngx_http_dynroute_api_error(r, NGX_HTTP_NOT_FOUND,
                   "the metrics are off (dynroute_zone metrics=off)");
    }

    if (res == NGX_HTTP_DYNROUTE_RES_UI) {
        if (ngx_http_dynroute_add_header(r, ngx_http_dynroute_api_csp,
                                         ngx_http_dynroute_api_csp_value)
            == NULL)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_dynroute_api_send(r, NGX_HTTP_OK,
                                          dynroute::status_page(),
                                          NGX_HTTP_DYNROUTE_NO_ETAG, NULL,
                                          "text/html; charset=utf-8");
    }

    try {
        dynroute::metrics::Snapshot snap;

        ngx_http_dynroute_api_snapshot(dmcf, snap);

        if (res == NGX_HTTP_DYNROUTE_RES_STATS) {
            return ngx_http_dynroute_api_send(r, NGX_HTTP_OK,
                       dynroute::metrics::render_stats(snap),
                       NGX_HTTP_DYNROUTE_NO_ETAG, NULL);
        }

        return ngx_http_dynroute_api_send(r, NGX_HTTP_OK,
                   dynroute::metrics::render_prometheus(snap),
                   NGX_HTTP_DYNROUTE_NO_ETAG, NULL,
                   "text/plain; version=0.0.4; charset=utf-8");

    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dynroute: API: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


/* an answer without reading the body: an error, or a page */

static ngx_int_t
ngx_http_dynroute_api_refuse(ngx_http_request_t *r, ngx_int_t status,
    const std::string &message, const char *allow = NULL) noexcept
{
    ngx_int_t  rc;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_dynroute_api_error(r, status, message, allow);
}


/*
 * A request that a web page in an operator's browser may have sent on
 * someone else's behalf: a Host that is none of the API's names (DNS
 * rebinding), or an Origin that is neither the API's own nor a listed one.
 * Returns the refusal's message, empty if none.
 */

static std::string
ngx_http_dynroute_api_cross_site(ngx_http_request_t *r,
    ngx_http_dynroute_api_conf_t *api)
{
    ngx_table_elt_t  *origin;

    std::string_view host = ngx_http_dynroute_view(r->headers_in.server);

    if (r->headers_in.host && !api->access->host_allowed(host)) {
        return "this API answers to the names of its server{} "
               "(server_name), localhost, IP addresses and dynroute_api "
               "host=, not to " + dynroute::quoted(host)
               + ": a web page that made its own name lead here would send "
                 "it";
    }

    origin = NULL;

    ngx_http_dynroute_each_header(&r->headers_in.headers,
        [&](ngx_table_elt_t &h) {

        if (origin == NULL && ngx_http_dynroute_header_is(h, "Origin")) {
            origin = &h;
        }
    });

    if (origin == NULL) {
        return "";
    }

#if (NGX_HTTP_SSL)
    std::string_view scheme = r->connection->ssl ? "https" : "http";
#else
    std::string_view scheme = "http";
#endif

    if (!api->access->origin_allowed(ngx_http_dynroute_view(origin->value),
            scheme, r->headers_in.host ? ngx_http_dynroute_view(
                                             r->headers_in.host->value)
                                       : std::string_view()))
    {
        return "requests from web pages of "
               + dynroute::quoted(ngx_http_dynroute_view(origin->value))
               + " are refused: this API takes those of its own origin and "
                 "of dynroute_api origin= only";
    }

    return "";
}


static ngx_int_t
ngx_http_dynroute_api_handler(ngx_http_request_t *r) noexcept
{
    ngx_int_t                      rc;
    ngx_uint_t                     res;
    std::string_view               name, addr;
    ngx_http_dynroute_api_conf_t  *api;
    ngx_http_dynroute_loc_conf_t  *dlcf;

    if (!ngx_http_dynroute_from_client(r, "dynroute_api")) {
        return NGX_HTTP_FORBIDDEN;
    }

    dlcf = static_cast<ngx_http_dynroute_loc_conf_t *>(
               ngx_http_get_module_loc_conf(r, ngx_http_dynroute_module));
    api = dlcf->api;

    if (api->only == 0) {
        try {
            std::string why = ngx_http_dynroute_api_cross_site(r, api);

            if (!why.empty()) {
                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                              "dynroute: API request refused: %s",
                              why.c_str());
                return ngx_http_dynroute_api_refuse(r, NGX_HTTP_FORBIDDEN,
                                                    why);
            }

        } catch (...) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    res = ngx_http_dynroute_api_resource(r, api, name, addr);

    if (res == NGX_HTTP_DYNROUTE_RES_NONE) {
        return ngx_http_dynroute_api_refuse(r, NGX_HTTP_NOT_FOUND,
                   "no such API resource "
                   + dynroute::quoted(ngx_http_dynroute_view(r->uri))
                   + (api->only ? " here: this location serves only "
                                  "what its dynroute_api only= says"
                                : ""));
    }

    const auto &m = ngx_http_dynroute_api_methods(res);

    if (!(r->method & (m.read | m.write))) {
        return ngx_http_dynroute_api_refuse(r, NGX_HTTP_NOT_ALLOWED,
                   "method not allowed here", m.allow);
    }

    if ((r->method & m.write) && !api->write) {
        return ngx_http_dynroute_api_refuse(r, NGX_HTTP_NOT_ALLOWED,
                   "this API location is read-only (dynroute_api write=off)",
                   (res == NGX_HTTP_DYNROUTE_RES_DRAIN
                    || res == NGX_HTTP_DYNROUTE_RES_READY) ? ""
                                                           : "GET, HEAD");
    }

    /* a plain HTML form sends no JSON: a write must say it is JSON */

    if ((r->method & (NGX_HTTP_POST|NGX_HTTP_PUT|NGX_HTTP_PATCH))
        && (r->headers_in.content_type == NULL
            || !dynroute::is_json_media_type(ngx_http_dynroute_view(
                   r->headers_in.content_type->value))))
    {
        return ngx_http_dynroute_api_refuse(r,
                   NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                   "a write needs \"Content-Type: application/json\"");
    }

    /* a body: PATCH and PUT, and the POST of a server */

    if (!(r->method & (NGX_HTTP_PATCH|NGX_HTTP_PUT))
        && !(r->method == NGX_HTTP_POST
             && (res == NGX_HTTP_DYNROUTE_RES_SERVERS
                 || res == NGX_HTTP_DYNROUTE_RES_RAMP)))
    {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        if (res >= NGX_HTTP_DYNROUTE_RES_METRICS) {
            return ngx_http_dynroute_api_metrics(r, res);
        }

        return ngx_http_dynroute_api_run(r);
    }

    if (r->headers_in.content_length_n > NGX_HTTP_DYNROUTE_API_BODY_MAX) {
        return ngx_http_dynroute_api_refuse(r,
                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                   "the request body is over the API's limit of 1 MiB");
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_dynroute_api_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_dynroute_api_body(ngx_http_request_t *r) noexcept
{
    ngx_http_finalize_request(r, ngx_http_dynroute_api_run(r));
}
