/*
 * Declarations shared by the glue files of ngx_http_dynroute_module.
 */
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "ngx.hpp"
#include "ngx_http_dynroute_conf.hpp"
#include "ngx_http_dynroute_string.hpp"
#include "rollout.hpp"

extern "C" {
extern ngx_module_t  ngx_http_dynroute_module;
}

struct ngx_http_dynroute_use_t;

typedef struct {
    ngx_http_dynroute_use_t  *use;      /* "dynroute": NULL is off */
    ngx_flag_t                health;   /* "dynroute_health" here */
} ngx_http_dynroute_loc_conf_t;

/* One variant of a rollout, in the core's order. */
typedef struct {
    ngx_str_t                      name;
    ngx_str_t                      upstream;
    ngx_http_upstream_srv_conf_t  *uscf;      /* of upstream */
    u_char                        *file;
    ngx_uint_t                     line;
} ngx_http_dynroute_variant_t;


/*
 * A "dynroute_rollout" block.  Allocated with new and deleted by a cleanup
 * of the cycle pool.  The split itself (weights, overrides) is the core
 * object; this struct adds what the glue needs to feed it.
 */
struct ngx_http_dynroute_rollout_t {
    ngx_str_t                                  name;
    u_char                                    *file;
    ngx_uint_t                                 line;
    std::vector<ngx_http_dynroute_variant_t>   variants;
    std::vector<ngx_int_t>                     keys;    /* variable indexes */
    ngx_str_t                                  header;  /* empty: none */
    ngx_str_t                                  cookie;  /* empty: none */
    bool                                       sources;
    std::unique_ptr<dynroute::Rollout>         core;
};


typedef struct {
    ngx_array_t                tables;    /* ngx_http_dynroute_table_t * */
    ngx_array_t                uses;      /* ngx_http_dynroute_use_t * */
    ngx_array_t                rollouts;  /* ngx_http_dynroute_rollout_t * */
    ngx_array_t                balancers; /* ngx_http_upstream_srv_conf_t * */
} ngx_http_dynroute_main_conf_t;


/* What a dynroute_balancer hands a request to. */
typedef struct {
    ngx_http_upstream_srv_conf_t  *chosen;
    ngx_http_upstream_srv_conf_t  *primary;  /* a rollout's, if not chosen */
} ngx_http_dynroute_choice_t;


char *ngx_http_dynroute_rollout_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
ngx_http_dynroute_rollout_t *ngx_http_dynroute_rollout_find(
    ngx_http_dynroute_main_conf_t *dmcf, const ngx_str_t &name) noexcept;
ngx_int_t ngx_http_dynroute_rollout_check(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_t *rollout) noexcept;
ngx_uint_t ngx_http_dynroute_rollout_pick(ngx_http_request_t *r,
    ngx_http_dynroute_rollout_t *rollout) noexcept;

char *ngx_http_dynroute_health(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;

ngx_int_t ngx_http_dynroute_choose(ngx_http_request_t *r,
    ngx_http_dynroute_choice_t *choice) noexcept;
void ngx_http_dynroute_fell_back(ngx_http_request_t *r) noexcept;

char *ngx_http_dynroute_balancer(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
ngx_int_t ngx_http_dynroute_balancer_check(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;
ngx_int_t ngx_http_dynroute_balancer_check_location(ngx_conf_t *cf,
    ngx_http_dynroute_loc_conf_t *conf) noexcept;
