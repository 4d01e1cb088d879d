// GitHub App authentication: an RS256 JWT (OpenSSL) exchanged for an installation token.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <chrono>
#include <ctime>
#include <memory>

#include <nlohmann/json.hpp>

#include "service/host/github_host.hpp"

namespace tollgate::service::host {

namespace {

std::string base64url(const unsigned char* data, std::size_t n) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (std::size_t i = 0; i < n; i += 3) {
    const unsigned v = (unsigned(data[i]) << 16) | (i + 1 < n ? unsigned(data[i + 1]) << 8 : 0u) | (i + 2 < n ? unsigned(data[i + 2]) : 0u);
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    if (i + 1 < n) out.push_back(alphabet[(v >> 6) & 63]);
    if (i + 2 < n) out.push_back(alphabet[v & 63]);
  }
  return out;
}

std::string base64url(const std::string& s) { return base64url(reinterpret_cast<const unsigned char*>(s.data()), s.size()); }

std::string openssl_error() {
  const unsigned long e = ERR_get_error();
  if (e == 0) return "unknown openssl error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// "2016-07-11T22:14:10Z" -> epoch seconds; 0 when unreadable.
std::int64_t parse_iso8601(const std::string& s) {
  std::tm tm{};
  if (::strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return 0;
  return static_cast<std::int64_t>(::timegm(&tm));
}

std::int64_t system_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

tl::expected<std::string, std::string> sign_jwt_rs256(const std::string& payload_json, const std::string& private_key_pem) {
  const std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(private_key_pem.data(), static_cast<int>(private_key_pem.size())),
                                                       &BIO_free);
  if (!bio) return tl::unexpected("jwt: " + openssl_error());
  const std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr),
                                                                &EVP_PKEY_free);
  if (!key) return tl::unexpected("jwt: private key: " + openssl_error());
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) return tl::unexpected<std::string>("jwt: private key: not an rsa key");
  const std::string signing_input = base64url(std::string(R"({"alg":"RS256","typ":"JWT"})")) + "." + base64url(payload_json);
  const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  std::size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) != 1)
    return tl::unexpected("jwt: sign: " + openssl_error());
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) != 1)
    return tl::unexpected("jwt: sign: " + openssl_error());
  sig.resize(len);
  return signing_input + "." + base64url(sig);
}

GitHubAppToken::GitHubAppToken(HttpClient& client, GitHubAppOptions options) : client_(client), options_(std::move(options)) {
  while (options_.api_url.ends_with('/')) options_.api_url.pop_back();
  if (!options_.now_epoch) options_.now_epoch = system_now;
}

HostResult<std::string> GitHubAppToken::jwt() const {
  const std::int64_t now = options_.now_epoch();
  // iat in the past covers clock drift; GitHub refuses exp more than 10 minutes ahead.
  const nlohmann::json payload = {{"iat", now - 60}, {"exp", now + 9 * 60}, {"iss", options_.app_id}};
  auto signed_jwt = sign_jwt_rs256(payload.dump(), options_.private_key_pem);
  if (!signed_jwt) return tl::unexpected(HostError{HostError::Kind::unauthorized, 0, signed_jwt.error()});
  return *signed_jwt;
}

HostResult<std::string> GitHubAppToken::token() {
  std::lock_guard lock(mutex_);
  const std::int64_t now = options_.now_epoch();
  if (!token_.empty() && now + options_.renew_before.count() < expires_at_) return token_;
  auto j = jwt();
  if (!j) return tl::unexpected(j.error());
  HttpRequest req;
  req.method = "POST";
  req.url = options_.api_url + "/app/installations/" + std::to_string(options_.installation_id) + "/access_tokens";
  req.retry_safe = true;  // a second token is as good as the first
  req.headers = {{"Accept", "application/vnd.github+json"},
                 {"X-GitHub-Api-Version", "2022-11-28"},
                 {"Authorization", "Bearer " + *j}};
  const std::string where = "installation " + std::to_string(options_.installation_id) + ": access token";
  auto res = client_.request(std::move(req));
  if (!res) return tl::unexpected(HostError{HostError::Kind::transient, 0, where + ": " + res.error().message});
  if (res->status != 201) {
    const auto kind = res->status == 401 ? HostError::Kind::unauthorized
                      : res->status == 404 ? HostError::Kind::not_found
                                           : HostError::Kind::other;
    const auto body = nlohmann::json::parse(res->body, nullptr, false);
    const std::string msg = body.is_object() && body.contains("message") && body["message"].is_string() ? body["message"].get<std::string>() : "";
    return tl::unexpected(HostError{kind, res->status, where + ": " + std::to_string(res->status) + " " + msg});
  }
  const auto body = nlohmann::json::parse(res->body, nullptr, false);
  if (!body.is_object() || !body.contains("token") || !body["token"].is_string())
    return tl::unexpected(HostError{HostError::Kind::other, res->status, where + ": no token in the answer"});
  token_ = body["token"].get<std::string>();
  expires_at_ = body.contains("expires_at") && body["expires_at"].is_string() ? parse_iso8601(body["expires_at"].get<std::string>()) : 0;
  if (expires_at_ == 0) expires_at_ = now + 3600;
  return token_;
}

}  // namespace tollgate::service::host
