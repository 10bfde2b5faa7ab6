/*
 * The one place that includes nginx headers into C++.  nginx is C: its
 * symbols must keep C linkage, or the module fails to load with undefined
 * mangled names.
 */
#pragma once

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}
