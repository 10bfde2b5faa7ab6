/*
 * The guard of a rollout (ngx_http_dynroute_guard.cpp): its line in a
 * dynroute_rollout block, its checks once everything is read, and the timer
 * of worker 0 of the current configuration that judges the guarded
 * variants every interval and trips a failing one (docs/design/canary.md,
 * part 2).
 */
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ngx_http_dynroute.hpp"
#include "guard.hpp"


/* a rollout's "guard" line, and what worker 0 keeps for it */
struct ngx_http_dynroute_guard_t {
    dynroute::guard::Params                    params;
    u_char                                    *file;
    ngx_uint_t                                 line;

    /* worker 0: by variant, the samples and the last verdict */
    std::vector<dynroute::guard::Ring>         rings;
    std::vector<dynroute::guard::Verdict>      verdicts;
    ngx_msec_t                                 next;  /* next judgement */
};


/* configuration */

/* "guard PARAMS" in the block of ro: value[0] is "guard", n parameters */
char *ngx_http_dynroute_guard_line(ngx_conf_t *cf,
    ngx_http_dynroute_rollout_t *ro, ngx_str_t *value, ngx_uint_t n)
    noexcept;

/* everything read: a guard needs two variants, a dynroute_zone and its
 * variants' counters */
ngx_int_t ngx_http_dynroute_guard_check(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;

/* a worker's start: worker 0 arms the timer if a rollout is guarded */
ngx_int_t ngx_http_dynroute_guard_init_process(ngx_cycle_t *cycle,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;


/* GET {prefix}rollouts/NAME: the rollout's answer with its guard's
 * figures from the zone, or as it is without a guard.  Throws. */
std::string ngx_http_dynroute_guard_answer(
    ngx_http_dynroute_main_conf_t *dmcf, std::string_view name,
    std::string rendered);


/* the evaluator's last verdict for variant v of rollout ro in this worker
 * (worker 0), or NULL */
const dynroute::guard::Verdict *ngx_http_dynroute_guard_verdict(
    ngx_http_dynroute_rollout_t *ro, ngx_uint_t v) noexcept;

/* called by the guard's timer after each judgement of ro, before the next
 * rollout: the ramp hooks here (defined in ngx_http_dynroute_ramp.cpp) */
void ngx_http_dynroute_ramp_tick(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_http_dynroute_rollout_t *ro, ngx_log_t *log) noexcept;
