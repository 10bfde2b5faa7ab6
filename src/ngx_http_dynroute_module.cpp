/*
 * ngx_http_dynroute_module: chooses the upstream for proxy_pass from the
 * Host header with nginx's own name semantics.  This file is the module's
 * frame: its directives, its configurations, and the order of what is
 * checked and set up once the configuration is read.  Each concern is a
 * file of its own, ngx_http_dynroute_<concern>.cpp with its header:
 *
 *   table        dynroute_table, dynroute        check      after parsing
 *   targets      the target registry             decision   per request
 *   rollout      dynroute_rollout, the pick      variables  $dynroute_*
 *   rollout_filter  the stickiness cookie        balancer   dynroute_balancer
 *   zone, view, state_file  the runtime state    api        dynroute_api
 *   metrics      counters, the log handler       health     dynroute_health
 *   servers      dynroute_servers
 *   health_check dynroute_health_check
 *
 * The matching itself lives in src/core (no nginx headers).  Every function
 * nginx calls is noexcept and catches what the core may throw at
 * configuration time; the request path calls nothing that throws.
 */

#include "ngx_http_dynroute.hpp"
#include "ngx_http_dynroute_api.hpp"
#include "ngx_http_dynroute_balancer.hpp"
#include "ngx_http_dynroute_check.hpp"
#include "ngx_http_dynroute_decision.hpp"
#include "ngx_http_dynroute_guard.hpp"
#include "ngx_http_dynroute_health.hpp"
#include "ngx_http_dynroute_health_check.hpp"
#include "ngx_http_dynroute_live.hpp"
#include "ngx_http_dynroute_metrics.hpp"
#include "ngx_http_dynroute_rollout.hpp"
#include "ngx_http_dynroute_rollout_filter.hpp"
#include "ngx_http_dynroute_servers.hpp"
#include "ngx_http_dynroute_services.hpp"
#include "ngx_http_dynroute_table.hpp"
#include "ngx_http_dynroute_targets.hpp"
#include "ngx_http_dynroute_variables.hpp"

#if (NGX_LINUX) && defined(__GLIBC__)
#include <malloc.h>
#endif


static void *ngx_http_dynroute_create_main_conf(ngx_conf_t *cf) noexcept;
static void *ngx_http_dynroute_create_loc_conf(ngx_conf_t *cf) noexcept;
static char *ngx_http_dynroute_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child) noexcept;
static ngx_int_t ngx_http_dynroute_init(ngx_conf_t *cf) noexcept;
static ngx_int_t ngx_http_dynroute_init_process(ngx_cycle_t *cycle) noexcept;


static ngx_command_t  ngx_http_dynroute_commands[] = {

    { ngx_string("dynroute_table"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE12,
      ngx_http_dynroute_table_block,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_rollout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_http_dynroute_rollout_block,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_sticky_secret"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_dynroute_sticky_secret,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    /* taken in http{} too, only to say where it belongs */
    { ngx_string("dynroute"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_dynroute,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_dynroute_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2|NGX_CONF_TAKE3|NGX_CONF_TAKE4,
      ngx_http_dynroute_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_ANY,
      ngx_http_dynroute_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_balancer"),
      NGX_HTTP_UPS_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE12,
      ngx_http_dynroute_balancer,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_servers"),
      NGX_HTTP_UPS_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE12,
      ngx_http_dynroute_servers,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_health_check"),
      NGX_HTTP_UPS_CONF|NGX_CONF_ANY,
      ngx_http_dynroute_health_check,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("dynroute_services"),
      NGX_HTTP_UPS_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE12,
      ngx_http_dynroute_services,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_dynroute_module_ctx = {
    ngx_http_dynroute_add_variables,       /* preconfiguration */
    ngx_http_dynroute_init,                /* postconfiguration */

    ngx_http_dynroute_create_main_conf,    /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_dynroute_create_loc_conf,     /* create location configuration */
    ngx_http_dynroute_merge_loc_conf       /* merge location configuration */
};


extern "C" {

ngx_module_t  ngx_http_dynroute_module = {
    NGX_MODULE_V1,
    &ngx_http_dynroute_module_ctx,         /* module context */
    ngx_http_dynroute_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_dynroute_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};

}


static void *
ngx_http_dynroute_create_main_conf(ngx_conf_t *cf) noexcept
{
    ngx_http_dynroute_main_conf_t  *dmcf;

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_pcalloc(cf->pool, sizeof(ngx_http_dynroute_main_conf_t)));
    if (dmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&dmcf->tables, cf->pool, 4,
                       sizeof(ngx_http_dynroute_table_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&dmcf->uses, cf->pool, 4,
                       sizeof(ngx_http_dynroute_use_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&dmcf->rollouts, cf->pool, 4,
                       sizeof(ngx_http_dynroute_rollout_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&dmcf->balancers, cf->pool, 1,
                       sizeof(ngx_http_upstream_srv_conf_t *))
        != NGX_OK
        || ngx_array_init(&dmcf->servers, cf->pool, 1, sizeof(void *))
           != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&dmcf->apis, cf->pool, 1, sizeof(void *)) != NGX_OK
        || ngx_array_init(&dmcf->readiness, cf->pool, 1,
                          sizeof(ngx_http_dynroute_where_t))
           != NGX_OK)
    {
        return NULL;
    }

    return dmcf;
}


static void *
ngx_http_dynroute_create_loc_conf(ngx_conf_t *cf) noexcept
{
    ngx_http_dynroute_loc_conf_t  *conf;

    conf = static_cast<ngx_http_dynroute_loc_conf_t *>(
               ngx_pcalloc(cf->pool, sizeof(ngx_http_dynroute_loc_conf_t)));
    if (conf == NULL) {
        return NULL;
    }

    conf->use = static_cast<ngx_http_dynroute_use_t *>(NGX_CONF_UNSET_PTR);

    /* the block's first line, read just now, for what is checked later */
    conf->where.file = cf->conf_file->file.name.data;
    conf->where.line = cf->conf_file->line;

    /* conf->health = NGX_HTTP_DYNROUTE_HEALTH_OFF: not merged, a content
     * handler of this location only */

    return conf;
}


static char *
ngx_http_dynroute_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child) noexcept
{
    ngx_http_dynroute_loc_conf_t *prev =
        static_cast<ngx_http_dynroute_loc_conf_t *>(parent);
    ngx_http_dynroute_loc_conf_t *conf =
        static_cast<ngx_http_dynroute_loc_conf_t *>(child);

    ngx_conf_merge_ptr_value(conf->use, prev->use, NULL);

    if (ngx_http_dynroute_balancer_check_location(cf, conf) != NGX_OK) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* a worker of a new configuration adopts the runtime state, and gives
 * back the heap it inherited free */

static ngx_int_t
ngx_http_dynroute_init_process(ngx_cycle_t *cycle) noexcept
{
    ngx_http_dynroute_main_conf_t  *dmcf;

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_cycle_get_module_main_conf(cycle,
                                                   ngx_http_dynroute_module));

    if (dmcf && dmcf->zone) {
        ngx_http_dynroute_live_adopt(dmcf->live, cycle->log);
        (void) ngx_http_dynroute_guard_init_process(cycle, dmcf);
        ngx_http_dynroute_health_check_start(cycle, dmcf);
    }

    /*
     * After a reload the master has freed the previous configuration's
     * tables (and read this one's) in its heap, and glibc keeps what was
     * freed resident in every worker forked from it: give it back.  Only
     * where tables were read; the rest is left as nginx has it.
     */

#if (NGX_LINUX) && defined(__GLIBC__)
    if (dmcf && dmcf->tables.nelts) {
        (void) malloc_trim(0);
    }
#endif

    return NGX_OK;
}


/*
 * Everything is read: the registry of targets first (before the stand-in
 * upstream is added: it is no target), then what uses it, then what each
 * part sets up for the requests.
 */

static ngx_int_t
ngx_http_dynroute_init(ngx_conf_t *cf) noexcept
{
    ngx_uint_t                      i;
    ngx_http_dynroute_rollout_t   **rp;
    ngx_http_dynroute_main_conf_t  *dmcf;

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(
               ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_dynroute_module));

    if (ngx_http_dynroute_targets_init(cf, dmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    rp = static_cast<ngx_http_dynroute_rollout_t **>(dmcf->rollouts.elts);

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        if (ngx_http_dynroute_rollout_check(cf, dmcf, rp[i]) != NGX_OK
            || ngx_http_dynroute_rollout_sign(cf, dmcf, rp[i]) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_dynroute_check_tables(cf, dmcf) != NGX_OK
        || ngx_http_dynroute_guard_check(cf, dmcf) != NGX_OK
        || ngx_http_dynroute_live_init(cf, dmcf) != NGX_OK
        || ngx_http_dynroute_api_check(cf, dmcf) != NGX_OK
        || ngx_http_dynroute_add_stand_in(cf) != NGX_OK
        || ngx_http_dynroute_balancer_check(cf, dmcf) != NGX_OK
        || ngx_http_dynroute_servers_check(cf, dmcf) != NGX_OK
        || ngx_http_dynroute_health_check_init(cf, dmcf) != NGX_OK
        || ngx_http_dynroute_services_check(cf, dmcf) != NGX_OK
        || ngx_http_dynroute_metrics_log_init(cf, dmcf) != NGX_OK
        || ngx_http_dynroute_rollout_filter_init(cf, dmcf) != NGX_OK
        || ngx_http_dynroute_decision_init(cf, dmcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}
