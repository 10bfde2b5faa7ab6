/*
 * The checks made once everything is read (ngx_http_dynroute_check.cpp):
 * each table's targets, each "dynroute NAME", the named locations a table
 * jumps to, and jumps that would need to be made twice.
 */
#pragma once

#include "ngx_http_dynroute.hpp"


ngx_int_t ngx_http_dynroute_check_tables(ngx_conf_t *cf,
    ngx_http_dynroute_main_conf_t *dmcf) noexcept;
