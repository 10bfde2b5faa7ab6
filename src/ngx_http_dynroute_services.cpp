/*
 * dynroute_services: the upstream{} that carries every service created at
 * run time (docs/design/membership.md).  nginx's upstream machinery (the
 * peer.init chain, keepalive's cache, proxy_next_upstream) needs an
 * upstream{}; a service has none, so one upstream, the carrier, lends its
 * own to all of them: a request routed to a service is routed to the
 * carrier, whose peer initialisation tries the service's servers.  Its
 * "keepalive N" is the services' cache, matched by address.
 *
 * The carrier has no "server" lines and is no target (the registry gives
 * it a why): a runtime host or a flip names a service.  At most one
 * upstream per configuration carries services; its limits are the
 * schema's (the API refuses a service or a server beyond them).
 */

#include "ngx_http_dynroute_services.hpp"
#include "ngx_http_dynroute_decision.hpp"


/* most services, and servers of every service together; the defaults */
static const ngx_uint_t  ngx_http_dynroute_services_limit = 65536;
static const ngx_uint_t  ngx_http_dynroute_services_max_default = 100;
static const ngx_uint_t  ngx_http_dynroute_services_servers_default = 1024;


struct ngx_http_dynroute_services_conf_t {
    ngx_http_upstream_srv_conf_t  *uscf;
    ngx_uint_t                     max_services;
    ngx_uint_t                     servers;
    ngx_uint_t                     ran;      /* our init_upstream ran */
    ngx_uint_t                     lines;    /* "server" lines before us */
    u_char                        *file;     /* the directive's */
    ngx_uint_t                     line;
};


static ngx_int_t ngx_http_dynroute_services_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us) noexcept;
static ngx_int_t ngx_http_dynroute_services_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us) noexcept;
static ngx_int_t ngx_http_dynroute_services_none(ngx_peer_connection_t *pc,
    void *data) noexcept;
static void ngx_http_dynroute_services_free_none(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state) noexcept;


/* a limit of the directive: N of "name=N", from 1 to the limit; 0: bad */

static ngx_uint_t
ngx_http_dynroute_services_number(ngx_str_t *v, size_t skip) noexcept
{
    ngx_int_t  n;

    n = ngx_atoi(v->data + skip, v->len - skip);

    if (n == NGX_ERROR || n == 0
        || static_cast<ngx_uint_t>(n) > ngx_http_dynroute_services_limit)
    {
        return 0;
    }

    return static_cast<ngx_uint_t>(n);
}


/* "dynroute_services [max_services=N] [servers=N];" in an upstream{} */

char *
ngx_http_dynroute_services(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_str_t                          *value;
    ngx_uint_t                          i;
    ngx_http_upstream_server_t         *none;
    ngx_http_upstream_srv_conf_t       *uscf;
    ngx_http_dynroute_main_conf_t      *dmcf;
    ngx_http_dynroute_services_conf_t  *scf;

    uscf = static_cast<ngx_http_upstream_srv_conf_t *>(
               ngx_http_conf_get_module_srv_conf(cf,
                                                 ngx_http_upstream_module));

    if (uscf->peer.init_upstream == ngx_http_dynroute_services_init_upstream)
    {
        return const_cast<char *>("is duplicate");
    }

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_dynroute_module));

    if (dmcf->carrier) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "upstream \"%V\" has dynroute_services, which "
                           "upstream \"%V\" has in %s:%ui: one upstream "
                           "carries every service", &uscf->host,
                           &dmcf->carrier->uscf->host, dmcf->carrier->file,
                           dmcf->carrier->line);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "dynroute_services comes after keepalive or "
                           "another balancing method in upstream \"%V\": "
                           "put dynroute_services before keepalive and drop "
                           "other balancing methods", &uscf->host);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    scf = static_cast<ngx_http_dynroute_services_conf_t *>(
              ngx_pcalloc(cf->pool,
                          sizeof(ngx_http_dynroute_services_conf_t)));
    if (scf == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    scf->uscf = uscf;
    scf->max_services = ngx_http_dynroute_services_max_default;
    scf->servers = ngx_http_dynroute_services_servers_default;
    scf->file = cf->conf_file->file.name.data;
    scf->line = cf->conf_file->line;
    scf->lines = uscf->servers->nelts;

    value = static_cast<ngx_str_t *>(cf->args->elts);

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len > 13
            && ngx_strncmp(value[i].data, "max_services=", 13) == 0)
        {
            scf->max_services = ngx_http_dynroute_services_number(&value[i],
                                                                  13);
            if (scf->max_services == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\": max_services= "
                                   "is the number of services the runtime "
                                   "may create, from 1 to %ui", &value[i],
                                   ngx_http_dynroute_services_limit);
                return NGX_HTTP_DYNROUTE_CONF_ERROR;
            }

            continue;
        }

        if (value[i].len > 8
            && ngx_strncmp(value[i].data, "servers=", 8) == 0)
        {
            scf->servers = ngx_http_dynroute_services_number(&value[i], 8);
            if (scf->servers == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\": servers= is "
                                   "the number of servers every service "
                                   "holds together, from 1 to %ui",
                                   &value[i],
                                   ngx_http_dynroute_services_limit);
                return NGX_HTTP_DYNROUTE_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\": expected "
                           "max_services=N or servers=N", &value[i]);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    uscf->flags &= ~NGX_HTTP_UPSTREAM_MAX_CONNS;
    uscf->peer.init_upstream = ngx_http_dynroute_services_init_upstream;
    uscf->peer.data = scf;

    /*
     * The upstream{} block refuses to end without a server: an empty
     * entry stands in, as for dynroute_balancer.
     */

    none = static_cast<ngx_http_upstream_server_t *>(
               ngx_array_push(uscf->servers));
    if (none == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    ngx_memzero(none, sizeof(ngx_http_upstream_server_t));

    dmcf->carrier = scf;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_dynroute_services_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us) noexcept
{
    ngx_http_dynroute_services_conf_t  *scf;

    scf = static_cast<ngx_http_dynroute_services_conf_t *>(us->peer.data);
    scf->ran = 1;

    us->peer.init = ngx_http_dynroute_services_init_peer;

    return NGX_OK;
}


/*
 * Postconfiguration: what the directive cannot see, written after it or
 * around it: "server" lines (the servers are the services'), a zone, a
 * balancing method that replaced ours.
 */

ngx_int_t
ngx_http_dynroute_services_check(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_http_dynroute_services_conf_t  *scf = dmcf->carrier;

    if (scf == NULL) {
        return NGX_OK;
    }

    if (scf->lines || scf->uscf->servers->nelts != 1) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "upstream \"%V\" has dynroute_services and \"server\" "
                      "lines: its servers are the services', which the "
                      "runtime creates; drop the \"server\" lines, in "
                      "%s:%ui", &scf->uscf->host, scf->file, scf->line);
        return NGX_ERROR;
    }

    if (scf->uscf->shm_zone) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "upstream \"%V\" has dynroute_services and a zone: "
                      "the workers keep the services' servers; drop "
                      "\"zone\", in %s:%ui", &scf->uscf->host, scf->file,
                      scf->line);
        return NGX_ERROR;
    }

    if (!scf->ran) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "upstream \"%V\" has dynroute_services and another "
                      "balancing method (hash, least_conn, random or "
                      "ip_hash) after it, which replaced it: drop that "
                      "method, in %s:%ui", &scf->uscf->host, scf->file,
                      scf->line);
        return NGX_ERROR;
    }

    return NGX_OK;
}


bool
ngx_http_dynroute_services_carrier(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_http_upstream_srv_conf_t *uscf) noexcept
{
    return dmcf->carrier && dmcf->carrier->uscf == uscf;
}


void
ngx_http_dynroute_services_info(ngx_http_dynroute_main_conf_t *dmcf,
    dynroute::Schema &schema)
{
    ngx_http_dynroute_services_conf_t  *scf = dmcf->carrier;

    if (scf == NULL || !scf->ran) {
        return;
    }

    schema.services.upstream = std::string(
        ngx_http_dynroute_view(scf->uscf->host));
    schema.services.max_services = static_cast<uint32_t>(scf->max_services);
    schema.services.max_servers = static_cast<uint32_t>(scf->servers);
    schema.services.hash = false;
}


/* request time */


/*
 * A request that reaches the carrier without a service (a proxy_pass
 * naming it, or a service deleted since the decision) has no server: it
 * answers 502, as an upstream whose servers are all down.
 */

static ngx_int_t
ngx_http_dynroute_services_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us) noexcept
{
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "dynroute: upstream \"%V\" carries the services created "
                  "at run time, and this request was routed to none",
                  &us->host);

    r->upstream->peer.data = us;
    r->upstream->peer.get = ngx_http_dynroute_services_none;
    r->upstream->peer.free = ngx_http_dynroute_services_free_none;
    r->upstream->peer.tries = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_dynroute_services_none(ngx_peer_connection_t *pc, void *data)
    noexcept
{
    ngx_http_upstream_srv_conf_t  *us;

    us = static_cast<ngx_http_upstream_srv_conf_t *>(data);

    pc->cached = 0;
    pc->connection = NULL;
    pc->name = &us->host;

    return NGX_BUSY;
}


static void
ngx_http_dynroute_services_free_none(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state) noexcept
{
    if (pc->tries) {
        pc->tries--;
    }
}
