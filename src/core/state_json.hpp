// The JSON that the runtime state's files share (state.cpp, members.cpp):
// parsing a body or a state file (nesting and duplicate keys refused),
// writing an answer, and reading a state file's members by type.  Internal
// to the core: nothing outside src/core includes nlohmann through it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "text.hpp"

namespace dynroute {

// Answers keep the configuration's order (ordered_json); what is parsed,
// and the hosts, which may be 100,000 and more, use sorted maps: an
// ordered_json object searches its keys one by one on every insertion.
using json = nlohmann::ordered_json;
using input = nlohmann::json;

// text as a JSON object: ApiError 400 when it is not one, nests deeper
// than 8 levels or names a member twice (`what` says what it is in the
// message: "the request body", "the state file").
input parse_object(std::string_view text, const char *what);

// An answer's text: bytes that are not UTF-8 are replaced, not thrown on.
std::string text(const json &j);

// v's string, or ApiError 400 "WHAT must be a string".
const std::string &string_field(const input &v, const std::string &what);

// Reading a state file: every type is checked, so that a damaged file is
// refused as a whole rather than half applied.  Throws ConfigError.
[[noreturn]] void corrupt(const std::string &what);

// obj's member `name` if it passes `is` (null when absent); corrupt()
// names it and `type` otherwise.
const input &member(const input &obj, const char *name,
                    bool (input::*is)() const noexcept, const char *type);

// members.cpp's part of the state file: "servers" and "services" into j
// when there are any; read back (ids given afresh, configured servers'
// from the schema); pruned to what the schema allows.
struct State;
struct Schema;
void dump_members(const State &state, json &j);
void load_members(const input &j, const Schema &schema, State &s);
void prune_members(State &state, const Schema &schema,
                   std::vector<std::string> &notices);

}  // namespace dynroute
