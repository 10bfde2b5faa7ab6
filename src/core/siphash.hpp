// SipHash-2-4 (Aumasson and Bernstein): a keyed 64-bit pseudorandom
// function, fast on short inputs.  dynroute signs its stickiness cookies
// with it: without the 128-bit key, a valid tag cannot be made.
//
// Pure C++17, no nginx headers; never throws or allocates.
#pragma once

#include <cstdint>
#include <string_view>

namespace dynroute {

struct SipKey {
    std::uint64_t k0 = 0;
    std::uint64_t k1 = 0;
};

std::uint64_t siphash24(const SipKey &key, std::string_view data) noexcept;

// SipHash-2-4 over data given in pieces: finish() gives what siphash24
// gives over their concatenation.  A copy carries the whole state, so a
// prefix common to many messages is absorbed once and copied.
class SipHasher {
public:
    explicit SipHasher(const SipKey &key) noexcept;

    void update(std::string_view data) noexcept;
    std::uint64_t finish() const noexcept;

private:
    std::uint64_t v0_, v1_, v2_, v3_;
    std::uint64_t tail_ = 0;    // the bytes of an unfinished block
    std::uint64_t length_ = 0;  // bytes so far
};

// A key derived from a secret of any length (a file's bytes).
SipKey sip_key_from(std::string_view secret) noexcept;

// true if a and b are equal, in a time that depends on their sizes only.
bool equal_constant_time(std::string_view a, std::string_view b) noexcept;

}  // namespace dynroute
