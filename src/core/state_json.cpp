#include "state_json.hpp"

#include <algorithm>
#include <vector>

namespace dynroute {

namespace {

// Nesting deeper than this is refused while parsing, before it costs
// anything: no valid request or state file nests more than four levels.
constexpr int max_depth = 8;

// The message of a nlohmann exception without its "[json.exception...] ".
std::string json_message(const nlohmann::detail::exception &e)
{
    std::string s = e.what();
    std::size_t p = s.find("] ");
    return p == std::string::npos ? s : s.substr(p + 2);
}

// The deepest nesting of arrays and objects in text, outside strings.  A
// plain scan: nlohmann's parser callback, which could count it instead,
// makes parsing quadratic in the number of members.
int nesting(std::string_view text) noexcept
{
    int depth = 0, deepest = 0;
    bool in_string = false, escaped = false;

    for (char c : text) {
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }

        if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            deepest = std::max(deepest, ++depth);
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }

    return deepest;
}

// Builds the document from nlohmann's parse events, as its own DOM builder
// does, and refuses an object that names a member twice: in
// {"stable": 100, "stable": 0} neither value is the weight (JSON leaves the
// meaning open), and a builder that kept the last would hide the mistake.
// The check is the map's own insertion: it costs nothing.
class UniqueKeys {
public:
    UniqueKeys(input &root, const char *what) : root_(root), what_(what) {}

    bool null() { place(nullptr); return true; }
    bool boolean(bool v) { place(v); return true; }
    bool number_integer(input::number_integer_t v) { place(v); return true; }
    bool number_unsigned(input::number_unsigned_t v) { place(v); return true; }
    bool number_float(input::number_float_t v, const input::string_t &)
    {
        place(v);
        return true;
    }
    bool string(input::string_t &v) { place(std::move(v)); return true; }
    bool binary(input::binary_t &v) { place(std::move(v)); return true; }

    bool start_object(std::size_t)
    {
        stack_.push_back(place(input::value_t::object));
        return true;
    }

    bool key(input::string_t &k)
    {
        auto &members = stack_.back()->get_ref<input::object_t &>();
        auto [it, added] = members.emplace(std::move(k), nullptr);

        if (!added) {
            throw ApiError(400, "duplicate key " + dynroute::quoted(it->first)
                                + " in " + what_);
        }

        member_ = &it->second;
        return true;
    }

    bool end_object()
    {
        stack_.pop_back();
        return true;
    }

    bool start_array(std::size_t)
    {
        stack_.push_back(place(input::value_t::array));
        return true;
    }

    bool end_array()
    {
        stack_.pop_back();
        return true;
    }

    template <typename Exception>
    bool parse_error(std::size_t, const std::string &, const Exception &e)
    {
        throw e;
    }

private:
    // where the next value goes: the root, an array's end, or the member
    // whose key came last
    template <typename V>
    input *place(V &&v)
    {
        if (stack_.empty()) {
            root_ = input(std::forward<V>(v));
            return &root_;
        }

        if (stack_.back()->is_array()) {
            auto &a = stack_.back()->get_ref<input::array_t &>();
            a.emplace_back(std::forward<V>(v));
            return &a.back();
        }

        *member_ = input(std::forward<V>(v));
        return member_;
    }

    input &root_;
    const char *what_;
    std::vector<input *> stack_;
    input *member_ = nullptr;
};

}  // namespace

input parse_object(std::string_view text, const char *what)
{
    input j;

    if (nesting(text) > max_depth) {
        throw ApiError(400, "JSON nested deeper than "
                            + std::to_string(max_depth) + " levels");
    }

    try {
        UniqueKeys sax(j, what);
        input::sax_parse(text.begin(), text.end(), &sax);

    } catch (const input::exception &e) {
        throw ApiError(400, std::string("malformed JSON in ") + what + ": "
                            + json_message(e));
    }

    if (!j.is_object()) {
        throw ApiError(400, std::string(what) + " must be a JSON object");
    }

    return j;
}

// Every answer goes out through here: a name from the configuration may
// hold bytes that are not UTF-8, and dump() would throw on them.
std::string text(const json &j)
{
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

const std::string &string_field(const input &v, const std::string &what)
{
    if (!v.is_string()) {
        throw ApiError(400, what + " must be a string");
    }
    return v.get_ref<const std::string &>();
}

// Reading a state file: every type is checked, so that a damaged file is
// refused as a whole rather than half applied.
[[noreturn]] void corrupt(const std::string &what)
{
    throw ConfigError("not a valid state file: " + what);
}

const input &member(const input &obj, const char *name, bool (input::*is)()
                    const noexcept, const char *type)
{
    static const input null;
    auto it = obj.find(name);

    if (it == obj.end()) {
        return null;
    }

    if (!((*it).*is)()) {
        corrupt(std::string("\"") + name + "\" is not " + type);
    }

    return *it;
}

}  // namespace dynroute
