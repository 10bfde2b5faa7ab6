/*
 * stream{}'s runtime state (ngx_stream_dynroute_runtime.cpp), in the http
 * dynroute_zone's state under dynroute::stream_ns: what the http side
 * calls while it initialises the zone.  Built only when nginx has stream;
 * the declarations are weak, NULL when the stream part was not built.  No
 * stream header here.
 */
#pragma once

#include <functional>
#include <string_view>

#include "ngx_http_dynroute.hpp"
#include "snapshot.hpp"


struct ngx_http_dynroute_live_t;

/*
 * Before the names are interned: the cycle's stream tables, upstreams and
 * rollouts into the schema the runtime state is checked against, each name
 * with the stream prefix.  Throws.
 */
void ngx_stream_dynroute_runtime_schema(ngx_cycle_t *cycle,
    dynroute::Schema &schema) __attribute__((weak));

/*
 * While the names are interned: the ids of those names, kept by the
 * stream configuration with what each stands for; live is this
 * configuration's side of the zone, which its connections read.  Throws.
 */
void ngx_stream_dynroute_runtime_intern(ngx_cycle_t *cycle,
    ngx_http_dynroute_live_t *live,
    const std::function<dynroute::NameId(std::string_view)> &id)
    __attribute__((weak));
