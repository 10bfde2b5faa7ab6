// SipHash-2-4: see siphash.hpp.  Written from the paper's description
// ("SipHash: a fast short-input PRF", 2012); checked against its test
// vectors in t/unit/sticky_test.cpp.
#include "siphash.hpp"

namespace dynroute {

namespace {

inline std::uint64_t rotl(std::uint64_t x, int b) noexcept
{
    return (x << b) | (x >> (64 - b));
}

struct State {
    std::uint64_t v0, v1, v2, v3;

    void round() noexcept
    {
        v0 += v1;
        v1 = rotl(v1, 13);
        v1 ^= v0;
        v0 = rotl(v0, 32);
        v2 += v3;
        v3 = rotl(v3, 16);
        v3 ^= v2;
        v0 += v3;
        v3 = rotl(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = rotl(v1, 17);
        v1 ^= v2;
        v2 = rotl(v2, 32);
    }

    void absorb(std::uint64_t m) noexcept
    {
        v3 ^= m;
        round();
        round();
        v0 ^= m;
    }
};

// little-endian load of n <= 8 bytes
inline std::uint64_t load(const unsigned char *p, std::size_t n) noexcept
{
    std::uint64_t x = 0;

    for (std::size_t i = 0; i < n; i++) {
        x |= std::uint64_t(p[i]) << (8 * i);
    }

    return x;
}

}  // namespace

SipHasher::SipHasher(const SipKey &key) noexcept
    : v0_(key.k0 ^ 0x736f6d6570736575ULL), v1_(key.k1 ^ 0x646f72616e646f6dULL),
      v2_(key.k0 ^ 0x6c7967656e657261ULL), v3_(key.k1 ^ 0x7465646279746573ULL)
{
}

void SipHasher::update(std::string_view data) noexcept
{
    State s{v0_, v1_, v2_, v3_};

    const auto *p = reinterpret_cast<const unsigned char *>(data.data());
    std::size_t n = data.size();
    std::size_t have = static_cast<std::size_t>(length_ % 8);

    length_ += n;

    // complete the unfinished block first
    if (have) {
        std::size_t take = n < 8 - have ? n : 8 - have;

        tail_ |= load(p, take) << (8 * have);
        p += take;
        n -= take;

        if (have + take < 8) {
            return;
        }

        s.absorb(tail_);
        tail_ = 0;
    }

    for (; n >= 8; n -= 8, p += 8) {
        s.absorb(load(p, 8));
    }

    tail_ = load(p, n);

    v0_ = s.v0;
    v1_ = s.v1;
    v2_ = s.v2;
    v3_ = s.v3;
}

std::uint64_t SipHasher::finish() const noexcept
{
    State s{v0_, v1_, v2_, v3_};

    s.absorb(tail_ | (length_ & 0xff) << 56);

    s.v2 ^= 0xff;
    s.round();
    s.round();
    s.round();
    s.round();

    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

std::uint64_t siphash24(const SipKey &key, std::string_view data) noexcept
{
    SipHasher h(key);

    h.update(data);

    return h.finish();
}

SipKey sip_key_from(std::string_view secret) noexcept
{
    // two fixed keys, so that the derived halves are independent
    static constexpr SipKey a{0x64796e726f757465ULL, 0x737469636b793031ULL};
    static constexpr SipKey b{0x64796e726f757465ULL, 0x737469636b793032ULL};

    return {siphash24(a, secret), siphash24(b, secret)};
}

bool equal_constant_time(std::string_view a, std::string_view b) noexcept
{
    if (a.size() != b.size()) {
        return false;
    }

    unsigned char d = 0;

    for (std::size_t i = 0; i < a.size(); i++) {
        d |= static_cast<unsigned char>(a[i] ^ b[i]);
    }

    return d == 0;
}

}  // namespace dynroute
