// A key table's value (dynroute_table NAME key=$variable) on arbitrary
// bytes: classify_key() and fold_key().
//
// Checks: classify_key() agrees with a plain model of its contract (one
// trailing dot ignored; then empty, longer than max_key, a byte a name
// never has, or a name) and ignores letter case and one more trailing dot;
// fold_key() stays in its max_key bytes (a heap buffer of exactly that
// size, so ASan sees a write past it) and gives the value lowercased
// without one trailing dot, all of it for a name; a name's fold is a name
// again (but for "..") that folds to itself unless the value ended in two
// dots; a runtime host's name (normalize_host) is a name that folds to the
// form the API stores.
#include <algorithm>
#include <memory>
#include <string>

#include "fuzz_util.hpp"
#include "host.hpp"
#include "runtime_hosts.hpp"

using namespace dynroute;

namespace {

bool odd_byte(char c)
{
    auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f || u == '/';
}

std::string_view strip_dot(std::string_view s)
{
    if (!s.empty() && s.back() == '.') {
        s.remove_suffix(1);
    }
    return s;
}

// The contract of classify_key(), byte by byte.
KeyValue model(std::string_view v)
{
    if (v.size() > max_key) {
        return KeyValue::too_long;
    }
    v = strip_dot(v);
    if (v.empty()) {
        return KeyValue::empty;
    }
    for (char c : v) {
        if (odd_byte(c)) {
            return KeyValue::odd;
        }
    }
    return KeyValue::name;
}

// fold_key() into exactly max_key bytes on the heap; checks it stays there.
std::string fold(std::string_view v)
{
    std::unique_ptr<char[]> buf(new char[max_key]);
    std::string_view out = fold_key(v, buf.get());
    FUZZ_CHECK(out.data() == buf.get());
    FUZZ_CHECK(out.size() <= max_key);
    return std::string(out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data,
                                      std::size_t size)
{
    std::string_view raw(reinterpret_cast<const char *>(data), size);

    KeyValue k = classify_key(raw);
    FUZZ_CHECK(k == model(raw));

    // Letter case never changes the class; neither does one more trailing
    // dot while it fits (a value already ending in '.' keeps that dot).
    FUZZ_CHECK(classify_key(fuzz::ascii_upper(raw)) == k);
    FUZZ_CHECK(classify_key(fuzz::ascii_lower(raw)) == k);
    if (raw.size() < max_key && (raw.empty() || raw.back() != '.')) {
        FUZZ_CHECK(classify_key(std::string(raw) + ".") == k);
    }

    // fold_key() is defined for names; whatever it is given, it writes only
    // max_key bytes and gives a prefix of the value, lowercased, without
    // one trailing dot.
    std::string f = fold(raw);
    std::string_view bare = strip_dot(raw);
    FUZZ_CHECK(f.size() == std::min(bare.size(), max_key));
    FUZZ_CHECK(f == fuzz::ascii_lower(bare.substr(0, f.size())));
    FUZZ_CHECK(fold(fuzz::ascii_upper(raw)) == f);

    if (k == KeyValue::name) {
        // All of a name, no upper case, no byte a name never has.
        FUZZ_CHECK(f.size() == bare.size());
        FUZZ_CHECK(!f.empty());
        for (char c : f) {
            FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
            FUZZ_CHECK(!odd_byte(c));
        }

        // The fold of a name is a name, but for "..", whose fold "." is
        // empty.  It ends in '.' only when the value ended in two dots
        // ("a.." folds to "a.": one dot is ignored, as for a Host);
        // otherwise folding again changes nothing.
        FUZZ_CHECK(classify_key(f) ==
                   (f == "." ? KeyValue::empty : KeyValue::name));
        bool two_dots = raw.size() >= 2 && raw[raw.size() - 1] == '.' &&
                        raw[raw.size() - 2] == '.';
        FUZZ_CHECK((f.back() == '.') == two_dots);
        if (!two_dots) {
            FUZZ_CHECK(fold(f) == f);
        } else {
            FUZZ_CHECK(fold(f) == f.substr(0, f.size() - 1));
        }
    }

    // A runtime host's name, as the API checks it, is a name whose fold is
    // what the API stores: a key value matches that entry.
    std::string stored, why;
    if (normalize_host(raw, stored, why)) {
        FUZZ_CHECK(k == KeyValue::name);
        FUZZ_CHECK(f == stored);
    }

    return 0;
}
