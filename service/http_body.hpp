#pragma once
// The body type of tollgate's request parser (service/http_server.cpp) and the step that feeds
// the parser, also used by the bench's ceiling server (bench/ingest/ceiling.cpp), so that both
// read a request the same way.

#include <cstddef>
#include <cstdint>
#include <string>

#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/optional.hpp>

namespace tollgate::service {

// Beast's string_body, except that it appends what arrives instead of zero-filling the string to
// the Content-Length first, and reserves `Padding` bytes after the body (so a JSON parser that
// reads past the end, as simdjson does, can parse it in place).
template <std::size_t Padding>
struct PaddedStringBody {
  using value_type = std::string;
  static std::uint64_t size(const value_type& body) { return body.size(); }

  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(boost::beast::http::header<isRequest, Fields>& /*header*/, value_type& body) : body_(body) {}

    void init(const boost::optional<std::uint64_t>& length, boost::beast::error_code& ec) {
      ec = {};
      if (!length) return;
      if (*length > body_.max_size() - Padding) {
        ec = boost::beast::http::error::buffer_overflow;
        return;
      }
      body_.reserve(static_cast<std::size_t>(*length) + Padding);
    }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, boost::beast::error_code& ec) {
      std::size_t n = 0;
      for (auto b : boost::beast::buffers_range_ref(buffers)) {
        body_.append(static_cast<const char*>(b.data()), b.size());
        n += b.size();
      }
      ec = {};
      return n;
    }

    void finish(boost::beast::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

// Gives the parser what `buffer` holds and consumes what it used. Returns the bytes used; `ec`
// is the parser's error, except need_more (the caller reads more when nothing was used).
template <class Parser, class Buffer>
std::size_t feed(Parser& parser, Buffer& buffer, boost::beast::error_code& ec) {
  ec = {};
  if (buffer.size() == 0) return 0;
  const std::size_t used = parser.put(buffer.data(), ec);
  buffer.consume(used);
  if (ec == boost::beast::http::error::need_more) ec = {};
  return used;
}

}  // namespace tollgate::service
