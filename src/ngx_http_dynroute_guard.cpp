/*
 * The guard of a rollout (docs/design/canary.md, part 2).
 *
 * "guard errors=5% latency=p99:500ms window=10s ..." in a dynroute_rollout
 * block.  Worker 0 of the current configuration samples every guarded
 * variant's counters in the zone each interval (the cumulative words the
 * log phase adds to, ngx_http_dynroute_metrics.cpp), keeps them in a ring
 * per variant, and judges each variant that is not the primary and has a
 * weight over the window (src/core/guard.cpp).  A failing one is tripped
 * through the API's own writer (ngx_http_dynroute_live_write): its weight
 * goes to the primary in every worker at once, the state file written
 * first, and the trip is recorded in the runtime state until an operator's
 * write clears it.  The verdicts and the trips are published in the zone
 * (the variant's GuardSlot words) for the API and the metrics.
 */

#include <cinttypes>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "ngx_http_dynroute_guard.hpp"
#include "ngx_http_dynroute_atomic.hpp"
#include "ngx_http_dynroute_live.hpp"
#include "metrics.hpp"
#include "state.hpp"


namespace g = dynroute::guard;
namespace m = dynroute::metrics;


static void ngx_http_dynroute_guard_cleanup(void *data) noexcept;
static void ngx_http_dynroute_guard_handler(ngx_event_t *ev) noexcept;


/* worker 0's timer: one for every guarded rollout */
static ngx_event_t  ngx_http_dynroute_guard_ev;


char *
ngx_http_dynroute_guard_line(ngx_conf_t *cf, ngx_http_dynroute_rollout_t *ro,
    ngx_str_t *value, ngx_uint_t n) noexcept
{
    ngx_uint_t           i;
    ngx_pool_cleanup_t  *cln;

    if (ro->guard) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate \"guard\" in dynroute rollout \"%V\", "
                           "first in %s:%ui: one guard per rollout, with "
                           "every parameter on its line", &ro->name,
                           ro->guard->file, ro->guard->line);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    try {
        std::vector<std::string_view> params;

        for (i = 1; i <= n; i++) {
            params.push_back(ngx_http_dynroute_view(value[i]));
        }

        g::Params parsed;

        try {
            parsed = g::parse(params);

        } catch (const dynroute::ConfigError &e) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in dynroute rollout \"%V\"", e.what(),
                               &ro->name);
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }

        cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == NULL) {
            return NGX_HTTP_DYNROUTE_CONF_ERROR;
        }

        ro->guard = new ngx_http_dynroute_guard_t();
        ro->guard->params = parsed;
        ro->guard->file = cf->conf_file->file.name.data;
        ro->guard->line = cf->conf_file->line;

        cln->handler = ngx_http_dynroute_guard_cleanup;
        cln->data = ro->guard;

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute");
    }

    return NGX_CONF_OK;
}


static void
ngx_http_dynroute_guard_cleanup(void *data) noexcept
{
    delete static_cast<ngx_http_dynroute_guard_t *>(data);
}


ngx_int_t
ngx_http_dynroute_guard_check(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    ngx_uint_t                     i;
    ngx_http_dynroute_guard_t     *gd;
    ngx_http_dynroute_rollout_t  **rp;

    rp = static_cast<ngx_http_dynroute_rollout_t **>(dmcf->rollouts.elts);

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        gd = rp[i]->guard;

        if (gd == NULL) {
            continue;
        }

        if (rp[i]->variants.size() < 2) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "guard in dynroute rollout \"%V\" with one "
                          "variant, in %s:%ui: a guard takes a failing "
                          "variant's weight to the primary, add a second "
                          "variant or remove the guard", &rp[i]->name,
                          gd->file, gd->line);
            return NGX_ERROR;
        }

        if (dmcf->zone == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "guard in dynroute rollout \"%V\" without a "
                          "dynroute_zone, in %s:%ui: the guard judges the "
                          "variants' counters in the zone, add "
                          "\"dynroute_zone NAME SIZE;\" to the http{} block",
                          &rp[i]->name, gd->file, gd->line);
            return NGX_ERROR;
        }

        if (dmcf->metrics == NGX_HTTP_DYNROUTE_METRICS_OFF) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "guard in dynroute rollout \"%V\" with "
                          "dynroute_zone metrics=off, in %s:%ui: the guard "
                          "judges the variants' counters, set "
                          "metrics=tables or metrics=rules", &rp[i]->name,
                          gd->file, gd->line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_dynroute_guard_init_process(ngx_cycle_t *cycle,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept
{
    bool                           any;
    ngx_uint_t                     i;
    ngx_http_dynroute_guard_t     *gd;
    ngx_http_dynroute_rollout_t  **rp;

    /* worker 0, or the one process of master_process off; never a
     * cache manager or loader */

    if (ngx_worker != 0 || dmcf == NULL || dmcf->zone == NULL
        || (ngx_process != NGX_PROCESS_WORKER
            && ngx_process != NGX_PROCESS_SINGLE))
    {
        return NGX_OK;
    }

    rp = static_cast<ngx_http_dynroute_rollout_t **>(dmcf->rollouts.elts);
    any = false;

    try {
        for (i = 0; i < dmcf->rollouts.nelts; i++) {
            gd = rp[i]->guard;

            if (gd == NULL) {
                continue;
            }

            gd->rings.resize(rp[i]->variants.size());
            gd->verdicts.assign(rp[i]->variants.size(), g::Verdict());

            for (auto &ring : gd->rings) {
                ring.reset(gd->params);
            }

            gd->next = ngx_current_msec;
            any = true;
        }

    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "dynroute: the guard cannot start: %s", e.what());
        return NGX_OK;
    }

    if (!any) {
        return NGX_OK;
    }

    ngx_http_dynroute_guard_ev.handler = ngx_http_dynroute_guard_handler;
    ngx_http_dynroute_guard_ev.data = dmcf;
    ngx_http_dynroute_guard_ev.log = cycle->log;
    ngx_http_dynroute_guard_ev.cancelable = 1;

    ngx_add_timer(&ngx_http_dynroute_guard_ev, 1);

    return NGX_OK;
}


const g::Verdict *
ngx_http_dynroute_guard_verdict(ngx_http_dynroute_rollout_t *ro, ngx_uint_t v)
    noexcept
{
    if (ro == NULL || ro->guard == NULL || v >= ro->guard->verdicts.size()) {
        return NULL;
    }

    return &ro->guard->verdicts[v];
}


std::string
ngx_http_dynroute_guard_answer(ngx_http_dynroute_main_conf_t *dmcf,
    std::string_view name, std::string rendered)
{
    size_t                         j;
    ngx_uint_t                     i, v;
    ngx_http_dynroute_route_t      route;
    ngx_http_dynroute_rollout_t  **rp, *ro;

    rp = static_cast<ngx_http_dynroute_rollout_t **>(dmcf->rollouts.elts);
    ro = NULL;

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        if (ngx_http_dynroute_view(rp[i]->name) == name) {
            ro = rp[i];
            break;
        }
    }

    if (ro == NULL || ro->guard == NULL) {
        return rendered;
    }

    route = ngx_http_dynroute_live_route(dmcf->live, ro);

    std::vector<g::Published> published(ro->variants.size());

    for (v = 0; v < ro->variants.size(); v++) {
        published[v].variant = std::string(
                                   ngx_http_dynroute_view(
                                       ro->variants[v].name));
        published[v].primary = (v == route.split.primary);

        if (ro->variants[v].guard) {
            for (j = 0; j < m::guard_width; j++) {
                published[v].words[j] = ngx_http_dynroute_counted(
                                            &ro->variants[v].guard[j]);
            }
        }
    }

    return g::with_guard(rendered, ro->guard->params, published);
}


/* the counts of a variant's words in the zone, read one at a time */

static g::Counts
ngx_http_dynroute_guard_counts(const uint64_t *c) noexcept
{
    size_t    i;
    uint64_t  words[m::variant_width];

    for (i = 0; i < m::variant_width; i++) {
        words[i] = ngx_http_dynroute_counted(&c[i]);
    }

    return g::counts_of(words);
}


/* "10%", "2.5%", "0.01%" of a weight in 0.01 % */

static void
ngx_http_dynroute_guard_pct(char *buf, size_t size, uint32_t w) noexcept
{
    if (w % 100 == 0) {
        std::snprintf(buf, size, "%u%%", w / 100);

    } else if (w % 10 == 0) {
        std::snprintf(buf, size, "%u.%u%%", w / 100, (w % 100) / 10);

    } else {
        std::snprintf(buf, size, "%u.%02u%%", w / 100, w % 100);
    }
}


/* whether the runtime state records a trip of ro: true if it cannot say */

static bool
ngx_http_dynroute_guard_tripped(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_http_dynroute_rollout_t *ro) noexcept
{
    bool              tripped;
    ngx_int_t         rc;
    std::string_view  name;

    tripped = true;
    name = ngx_http_dynroute_view(ro->name);

    try {
        std::string ignored;

        rc = ngx_http_dynroute_live_read(dmcf->live,
                 [&](const dynroute::State &st) {
                     auto it = st.rollouts.find(std::string(name));
                     tripped = (it != st.rollouts.end()
                                && it->second.trip.tripped());
                     return std::string();
                 }, ignored);

        if (rc != NGX_HTTP_OK) {
            return true;
        }

    } catch (...) {
        return true;
    }

    return tripped;
}


/* the one write of a trip: false if it was refused */

static bool
ngx_http_dynroute_guard_trip(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_http_dynroute_rollout_t *ro, ngx_uint_t v, const g::Verdict &vd,
    uint32_t weight, ngx_log_t *log) noexcept
{
    char        was[16];
    uint64_t    at_ms;
    ngx_int_t   rc;
    ngx_time_t *tp;

    tp = ngx_timeofday();
    at_ms = static_cast<uint64_t>(tp->sec) * 1000 + tp->msec;

    try {
        std::string body;
        std::string_view rollout = ngx_http_dynroute_view(ro->name);
        std::string_view variant = ngx_http_dynroute_view(
                                       ro->variants[v].name);
        const dynroute::Schema &schema =
            ngx_http_dynroute_live_schema(dmcf->live);
        auto reason = vd.reason;

        rc = ngx_http_dynroute_live_write(dmcf->live, log, -1,
                 [&](dynroute::State &st) {
                     dynroute::trip_guard(st, schema, rollout, variant,
                                          reason, vd.detail, at_ms);
                 },
                 [](const dynroute::State &) { return std::string(); },
                 body);

        if (rc != NGX_HTTP_OK) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "rollout \"%V\" guard: variant \"%V\" failed on "
                          "%s (%s) but could not be tripped: %d %s",
                          &ro->name, &ro->variants[v].name,
                          vd.reason == g::GuardReason::errors
                          ? "errors" : "latency", vd.detail, (int) rc,
                          body.c_str());
            return false;
        }

    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "rollout \"%V\" guard: variant \"%V\" could not be "
                      "tripped: %s", &ro->name, &ro->variants[v].name,
                      e.what());
        return false;
    }

    ngx_http_dynroute_guard_pct(was, sizeof(was), weight);

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "rollout \"%V\" guard: variant \"%V\" tripped on %s: %s; "
                  "weight %s -> 0%%", &ro->name, &ro->variants[v].name,
                  vd.reason == g::GuardReason::errors
                  ? "errors" : "latency", vd.detail, was);

    if (ro->variants[v].guard) {
        ngx_http_dynroute_count(&ro->variants[v].guard[m::g_trips
                                    + static_cast<size_t>(vd.reason)]);
    }

    return true;
}


/* the verdict in the zone, for the API of every worker */

static void
ngx_http_dynroute_guard_publish(ngx_http_dynroute_variant_t *var,
    const g::Verdict &vd) noexcept
{
    uint64_t    *w;
    ngx_time_t  *tp;

    w = var->guard;

    if (w == NULL) {
        return;
    }

    tp = ngx_timeofday();

    __atomic_store_n(&w[m::g_outcome], static_cast<uint64_t>(vd.outcome),
                     __ATOMIC_RELAXED);
    __atomic_store_n(&w[m::g_responses], vd.responses, __ATOMIC_RELAXED);
    __atomic_store_n(&w[m::g_errors], vd.errors, __ATOMIC_RELAXED);
    __atomic_store_n(&w[m::g_quantile_us],
                     static_cast<uint64_t>(vd.quantile_ms * 1000),
                     __ATOMIC_RELAXED);
    __atomic_store_n(&w[m::g_span_ms], vd.span_ms, __ATOMIC_RELAXED);
    __atomic_store_n(&w[m::g_at_ms],
                     static_cast<uint64_t>(tp->sec) * 1000 + tp->msec,
                     __ATOMIC_RELAXED);
}


/* one judgement of a guarded rollout */

static void
ngx_http_dynroute_guard_judge(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_http_dynroute_rollout_t *ro, ngx_log_t *log) noexcept
{
    bool                        tripped;
    size_t                      primary;
    uint64_t                    span, pspan;
    ngx_uint_t                  v;
    g::Counts                   pc, vc;
    ngx_http_dynroute_route_t   route;
    ngx_http_dynroute_guard_t  *gd;

    gd = ro->guard;

    ngx_http_dynroute_live_sync(dmcf->live);
    route = ngx_http_dynroute_live_route(dmcf->live, ro);
    primary = route.split.primary;

    for (v = 0; v < ro->variants.size(); v++) {
        if (ro->variants[v].counters) {
            gd->rings[v].push(ngx_current_msec,
                ngx_http_dynroute_guard_counts(ro->variants[v].counters));
        }
    }

    tripped = ngx_http_dynroute_guard_tripped(dmcf, ro);

    if (!gd->rings[primary].window(gd->params.window_ms, pc, &pspan)) {
        pc = g::Counts();
    }

    for (v = 0; v < ro->variants.size(); v++) {
        g::Verdict &vd = gd->verdicts[v];

        if (v == primary || tripped || route.split.weights[v] == 0
            || ro->variants[v].counters == NULL)
        {
            /*
             * not judged.  While the rollout is tripped, a window starts
             * again once an operator clears the trip; a variant at 0 %
             * keeps its samples (what overrides sent it), so that the
             * traffic between a step up and the next sample is judged too
             */

            if (v != primary && tripped) {
                gd->rings[v].clear();
            }

            vd = g::Verdict();
            ngx_http_dynroute_guard_publish(&ro->variants[v], vd);
            continue;
        }

        if (!gd->rings[v].window(gd->params.window_ms, vc, &span)) {
            vd = g::Verdict();
            vd.outcome = g::Outcome::waiting;
            ngx_http_dynroute_guard_publish(&ro->variants[v], vd);
            continue;
        }

        vd = g::judge(gd->params, vc, pc, span);
        ngx_http_dynroute_guard_publish(&ro->variants[v], vd);

        if (vd.outcome != g::Outcome::fail) {
            continue;
        }

        if (ngx_http_dynroute_guard_trip(dmcf, ro, v, vd,
                                         route.split.weights[v], log))
        {
            /* the rollout is tripped: judged again once it is cleared */
            tripped = true;
            gd->rings[v].clear();
        }
    }
}


static void
ngx_http_dynroute_guard_handler(ngx_event_t *ev) noexcept
{
    ngx_msec_t                      next, now;
    ngx_uint_t                      i;
    ngx_http_dynroute_guard_t      *gd;
    ngx_http_dynroute_rollout_t   **rp;
    ngx_http_dynroute_main_conf_t  *dmcf;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    dmcf = static_cast<ngx_http_dynroute_main_conf_t *>(ev->data);
    rp = static_cast<ngx_http_dynroute_rollout_t **>(dmcf->rollouts.elts);

    now = ngx_current_msec;
    next = 1000;

    for (i = 0; i < dmcf->rollouts.nelts; i++) {
        gd = rp[i]->guard;

        if (gd == NULL) {
            continue;
        }

        if ((ngx_msec_int_t) (gd->next - now) <= 0) {
            ngx_http_dynroute_guard_judge(dmcf, rp[i], ev->log);
            ngx_http_dynroute_ramp_tick(dmcf, rp[i], ev->log);

            gd->next = now + gd->params.interval_ms;
        }

        if (gd->next - now < next) {
            next = gd->next - now;
        }
    }

    ngx_add_timer(ev, next ? next : 1);
}
