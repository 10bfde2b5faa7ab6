/*
 * Configuration helpers shared by the glue of every dynroute module.
 */

#include "ngx_http_dynroute_conf.hpp"


/*
 * Only blocks written as upstream{} count (NGX_HTTP_UPSTREAM_CREATE): an
 * implicit one made by a proxy_pass to a host name is not a target, so that
 * a typo fails nginx -t instead of being resolved through DNS.
 */

ngx_http_upstream_srv_conf_t *
ngx_http_dynroute_find_upstream(ngx_conf_t *cf, const ngx_str_t &name) noexcept
{
    ngx_uint_t                       i;
    ngx_http_upstream_srv_conf_t   **uscfp;
    ngx_http_upstream_main_conf_t   *umcf;

    umcf = static_cast<ngx_http_upstream_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_upstream_module));

    uscfp = static_cast<ngx_http_upstream_srv_conf_t **>(
                umcf->upstreams.elts);

    for (i = 0; i < umcf->upstreams.nelts; i++) {
        if ((uscfp[i]->flags & NGX_HTTP_UPSTREAM_CREATE)
            && uscfp[i]->host.len == name.len
            && ngx_strncasecmp(uscfp[i]->host.data, name.data, name.len) == 0)
        {
            return uscfp[i];
        }
    }

    return NULL;
}
