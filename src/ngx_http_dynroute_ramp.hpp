/*
 * Ramps (ngx_http_dynroute_ramp.cpp): a rollout's "ramp" line, its checks
 * once everything is read, what the schema knows of it, and the step the
 * guard's timer takes when a running ramp has held its step and the guard
 * passed the variant (docs/design/canary.md, part 3).
 */
#pragma once

#include <cstdint>

#include "ngx_http_dynroute.hpp"
#include "state.hpp"


/* the guard's stub of ngx_http_dynroute_ramp_tick gives way to ours */
#define NGX_HTTP_DYNROUTE_RAMP  1


/* a rollout's "ramp" line */
struct ngx_http_dynroute_ramp_t {
    dynroute::RampInfo                         info;
    ngx_uint_t                                 variant;  /* its index */
    u_char                                    *file;
    ngx_uint_t                                 line;
};


/* configuration */

/* "ramp VARIANT STEP... hold=TIME" in the block of ro: value[0] is
 * "ramp", n parameters */
char *ngx_http_dynroute_ramp_line(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_t *ro, ngx_str_t *value, ngx_uint_t n)
    noexcept;

/* everything read: the variant is one of ro's and not its primary, the
 * rollout has a guard, and hold is at least the guard's window */
ngx_int_t ngx_http_dynroute_ramp_check(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_t *ro) noexcept;

/* the schema's copy of ro's ramp (none without one); throws */
void ngx_http_dynroute_ramp_info(ngx_http_dynroute_rollout_t *ro,
    dynroute::RolloutInfo &info);


/* unix time in milliseconds, as the runtime state keeps it */
uint64_t ngx_http_dynroute_ramp_now(void) noexcept;


/* worker 0, after the guard judged ro: the ramp's next step when it is
 * due and the guard passed its variant (one write), logged at notice */
void ngx_http_dynroute_ramp_tick(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_http_dynroute_rollout_t *ro, ngx_log_t *log) noexcept;
