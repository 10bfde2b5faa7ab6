/*
 * Declarations shared by the glue files of ngx_http_dynroute_module.
 */
#pragma once

#include <string_view>

#include "ngx.hpp"

extern "C" {
extern ngx_module_t  ngx_http_dynroute_module;
}

struct ngx_http_dynroute_use_t;

typedef struct {
    ngx_http_dynroute_use_t  *use;      /* "dynroute": NULL is off */
    ngx_flag_t                health;   /* "dynroute_health" here */
} ngx_http_dynroute_loc_conf_t;

/* a borrowed view of an nginx string, for the core */
static inline std::string_view
ngx_http_dynroute_view(const ngx_str_t &s) noexcept
{
    return std::string_view(reinterpret_cast<const char *>(s.data), s.len);
}

char *ngx_http_dynroute_health(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
