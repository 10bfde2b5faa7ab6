/*
 * ramp VARIANT STEP... hold=TIME: a rollout's variant raised step by step
 * by worker 0 of the current configuration, each step held `hold` and
 * passed by the guard before the next.  The steps and the state machine
 * are the core's (src/core/ramp.cpp); the guard's timer calls
 * ngx_http_dynroute_ramp_tick after it judged the rollout; the API starts,
 * pauses, resumes and aborts (ngx_http_dynroute_api.cpp).
 */

#include <string>
#include <string_view>
#include <vector>

#include "ngx_http_dynroute_ramp.hpp"
#include "ngx_http_dynroute_guard.hpp"
#include "ngx_http_dynroute_live.hpp"
#include "ramp.hpp"
#include "rollout.hpp"


char *
ngx_http_dynroute_ramp_line(ngx_conf_t *cf, ngx_http_dynroute_rollout_t *ro,
    ngx_str_t *value, ngx_uint_t n) noexcept
{
    ngx_uint_t                 i;
    ngx_http_dynroute_ramp_t  *ramp;

    if (ro->ramp) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate \"ramp\" in dynroute rollout \"%V\" "
                           "(the first in %s:%ui): a rollout ramps one "
                           "variant", &ro->name, ro->ramp->file,
                           ro->ramp->line);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    ramp = ngx_http_dynroute_conf_new<ngx_http_dynroute_ramp_t>(cf,
               "dynroute");
    if (ramp == NULL) {
        return NGX_HTTP_DYNROUTE_CONF_ERROR;
    }

    try {
        std::vector<std::string_view> params;

        for (i = 1; i <= n; i++) {
            params.push_back(ngx_http_dynroute_view(value[i]));
        }

        ramp->info = dynroute::parse_ramp(params);

    } catch (const dynroute::ConfigError &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s in dynroute rollout \"%V\"", e.what(),
                           &ro->name);
        return NGX_HTTP_DYNROUTE_CONF_ERROR;

    } catch (...) {
        return ngx_http_dynroute_conf_caught(cf, "dynroute");
    }

    ramp->file = cf->conf_file->file.name.data;
    ramp->line = cf->conf_file->line;
    ro->ramp = ramp;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_dynroute_ramp_check(ngx_conf_t *cf, ngx_http_dynroute_rollout_t *ro)
    noexcept
{
    ngx_str_t                  variant;
    ngx_uint_t                 v;
    ngx_http_dynroute_ramp_t  *ramp = ro->ramp;

    if (ramp == NULL) {
        return NGX_OK;
    }

    variant.data = (u_char *) ramp->info.variant.data();
    variant.len = ramp->info.variant.size();

    for (v = 0; v < ro->variants.size(); v++) {
        if (ngx_http_dynroute_view(ro->variants[v].name)
            == ramp->info.variant)
        {
            break;
        }
    }

    if (v == ro->variants.size()) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "unknown variant \"%V\" of the ramp in dynroute "
                      "rollout \"%V\" in %s:%ui: ramp one of the rollout's "
                      "variants", &variant, &ro->name, ramp->file,
                      ramp->line);
        return NGX_ERROR;
    }

    if (v == ro->core->primary()) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "variant \"%V\" of the ramp in dynroute rollout "
                      "\"%V\" in %s:%ui is the primary, which takes what "
                      "the ramp leaves: ramp another variant, or say "
                      "\"primary VARIANT;\"", &variant, &ro->name,
                      ramp->file, ramp->line);
        return NGX_ERROR;
    }

    if (ro->guard == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "the ramp in dynroute rollout \"%V\" in %s:%ui has "
                      "no guard to pass each step: add \"guard errors=5%%;\""
                      " (or latency=) to the rollout", &ro->name,
                      ramp->file, ramp->line);
        return NGX_ERROR;
    }

    if (ramp->info.hold_ms < ro->guard->params.window_ms) {
        std::string hold = dynroute::format_duration(ramp->info.hold_ms);
        std::string window = dynroute::format_duration(
                                 ro->guard->params.window_ms);

        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "invalid \"hold=%s\" of the ramp in dynroute rollout "
                      "\"%V\" in %s:%ui: a step is held at least the "
                      "guard's window (%s), so that it is judged on its "
                      "own traffic: write \"hold=%s\" or more",
                      hold.c_str(), &ro->name, ramp->file, ramp->line,
                      window.c_str(), window.c_str());
        return NGX_ERROR;
    }

    ramp->variant = v;

    return NGX_OK;
}


void
ngx_http_dynroute_ramp_info(ngx_http_dynroute_rollout_t *ro,
    dynroute::RolloutInfo &info)
{
    if (ro->ramp) {
        info.ramp = ro->ramp->info;
    }
}


uint64_t
ngx_http_dynroute_ramp_now(void) noexcept
{
    ngx_time_t  *tp = ngx_timeofday();

    return static_cast<uint64_t>(tp->sec) * 1000 + tp->msec;
}


/* "0.0% 5xx of 240 responses" */

static std::string
ngx_http_dynroute_ramp_figures(const dynroute::guard::Verdict &v)
{
    char  buf[96];

    double share = v.responses
                   ? 100.0 * static_cast<double>(v.errors)
                     / static_cast<double>(v.responses)
                   : 0.0;

    ngx_snprintf(reinterpret_cast<u_char *>(buf), sizeof(buf) - 1,
                 "%.1f%% 5xx of %uL responses%Z", share,
                 static_cast<uint64_t>(v.responses));

    return buf;
}


void
ngx_http_dynroute_ramp_tick(ngx_http_dynroute_main_conf_t *dmcf,
    ngx_http_dynroute_rollout_t *ro, ngx_log_t *log) noexcept
{
    ngx_int_t                         status;
    const dynroute::guard::Verdict   *verdict;
    ngx_http_dynroute_live_t         *live = dmcf->live;

    if (ro->ramp == NULL || live == NULL || dmcf->zone == NULL) {
        return;
    }

    try {
        const dynroute::Schema &schema = ngx_http_dynroute_live_schema(live);
        std::string_view name = ngx_http_dynroute_view(ro->name);
        uint64_t now = ngx_http_dynroute_ramp_now();
        bool due = false;
        std::string body;

        status = ngx_http_dynroute_live_read(live,
            [&](const dynroute::State &st) {
                due = dynroute::ramp_is_due(st, schema, name, now);
                return std::string();
            }, body);

        if (status != NGX_HTTP_OK || !due) {
            return;
        }

        verdict = ngx_http_dynroute_guard_verdict(ro, ro->ramp->variant);

        if (verdict == NULL
            || verdict->outcome != dynroute::guard::Outcome::pass)
        {
            return;
        }

        std::string figures = ngx_http_dynroute_ramp_figures(*verdict);
        dynroute::RampMove move;
        uint32_t from = 0, to = 0;
        bool done = false;
        uint64_t held = 0;

        status = ngx_http_dynroute_live_write(live, log, -1,
            [&](dynroute::State &st) {
                const dynroute::RolloutInfo *info = schema.rollout(name);
                const dynroute::RampState &rs = st.rollouts[info->name].ramp;

                from = info->ramp.steps[rs.step];
                held = dynroute::ramp_held(rs, now);

                if (!dynroute::ramp_advance(st, schema, name, now, figures,
                                            &move))
                {
                    throw dynroute::ApiError(409, "the ramp moved meanwhile");
                }

                const dynroute::RampState &next =
                    st.rollouts[info->name].ramp;
                to = info->ramp.steps[next.step];
                done = (next.phase == dynroute::RampPhase::done);

            }, [](const dynroute::State &) { return std::string(); }, body);

        if (status != NGX_HTTP_OK) {
            if (status != 409) {
                ngx_log_error(NGX_LOG_ERR, log, 0,
                              "rollout \"%V\" ramp: the step was not "
                              "written: %s", &ro->name, body.c_str());
            }
            return;
        }

        std::string f = dynroute::format_weight(from);
        std::string t = dynroute::format_weight(to);
        std::string h = dynroute::format_duration(held);
        std::string_view variant = ro->ramp->info.variant;

        if (done) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "rollout \"%V\" ramp: variant \"%*s\" done at %s "
                          "(held %s, %s)", &ro->name, variant.size(),
                          variant.data(), t.c_str(), h.c_str(),
                          figures.c_str());
        } else {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "rollout \"%V\" ramp: variant \"%*s\" %s -> %s "
                          "(held %s, %s)", &ro->name, variant.size(),
                          variant.data(), f.c_str(), t.c_str(), h.c_str(),
                          figures.c_str());
        }

    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "rollout \"%V\" ramp: %s",
                      &ro->name, e.what());
    }
}
