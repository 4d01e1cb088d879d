#include "service/pg.hpp"

#include <dlfcn.h>
#include <libpq-fe.h>

#include <cctype>
#include <charconv>
#include <map>
#include <set>
#include <type_traits>

namespace tollgate::service::pg {

namespace {
// libpq is loaded when the first PostgreSQL connection is opened, not linked: linking it loads
// its dependencies (LDAP, GnuTLS, Kerberos) into every tollgate at start, ~3 MB of resident memory
// that a SQLite deployment never uses (bench/RESULTS.md: idle RSS).
struct Libpq {
  decltype(&::PQclear) PQclear = nullptr;
  decltype(&::PQcmdTuples) PQcmdTuples = nullptr;
  decltype(&::PQconnectdb) PQconnectdb = nullptr;
  decltype(&::PQdescribePrepared) PQdescribePrepared = nullptr;
  decltype(&::PQerrorMessage) PQerrorMessage = nullptr;
  decltype(&::PQexec) PQexec = nullptr;
  decltype(&::PQexecPrepared) PQexecPrepared = nullptr;
  decltype(&::PQfinish) PQfinish = nullptr;
  decltype(&::PQfreemem) PQfreemem = nullptr;
  decltype(&::PQftype) PQftype = nullptr;
  decltype(&::PQgetisnull) PQgetisnull = nullptr;
  decltype(&::PQgetlength) PQgetlength = nullptr;
  decltype(&::PQgetvalue) PQgetvalue = nullptr;
  decltype(&::PQnparams) PQnparams = nullptr;
  decltype(&::PQntuples) PQntuples = nullptr;
  decltype(&::PQprepare) PQprepare = nullptr;
  decltype(&::PQresultErrorField) PQresultErrorField = nullptr;
  decltype(&::PQresultErrorMessage) PQresultErrorMessage = nullptr;
  decltype(&::PQresultStatus) PQresultStatus = nullptr;
  decltype(&::PQsetNoticeProcessor) PQsetNoticeProcessor = nullptr;
  decltype(&::PQstatus) PQstatus = nullptr;
  decltype(&::PQunescapeBytea) PQunescapeBytea = nullptr;
  decltype(&::PQreset) PQreset = nullptr;
  decltype(&::PQtransactionStatus) PQtransactionStatus = nullptr;
  std::string error;  // why it could not be loaded; empty when loaded
};

const Libpq& lib() {
  static const Libpq loaded = [] {
    Libpq l;
    void* handle = ::dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = ::dlerror();
      l.error = std::string("the PostgreSQL store needs libpq (Debian: apt-get install libpq5): ") + (why != nullptr ? why : "dlopen failed");
      return l;
    }
    const auto load = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(handle, name));
      if (fn == nullptr && l.error.empty()) l.error = std::string("libpq.so.5 has no ") + name + ": too old a libpq";
    };
    load(l.PQclear, "PQclear");
    load(l.PQcmdTuples, "PQcmdTuples");
    load(l.PQconnectdb, "PQconnectdb");
    load(l.PQdescribePrepared, "PQdescribePrepared");
    load(l.PQerrorMessage, "PQerrorMessage");
    load(l.PQexec, "PQexec");
    load(l.PQexecPrepared, "PQexecPrepared");
    load(l.PQfinish, "PQfinish");
    load(l.PQfreemem, "PQfreemem");
    load(l.PQftype, "PQftype");
    load(l.PQgetisnull, "PQgetisnull");
    load(l.PQgetlength, "PQgetlength");
    load(l.PQgetvalue, "PQgetvalue");
    load(l.PQnparams, "PQnparams");
    load(l.PQntuples, "PQntuples");
    load(l.PQprepare, "PQprepare");
    load(l.PQresultErrorField, "PQresultErrorField");
    load(l.PQresultErrorMessage, "PQresultErrorMessage");
    load(l.PQresultStatus, "PQresultStatus");
    load(l.PQsetNoticeProcessor, "PQsetNoticeProcessor");
    load(l.PQstatus, "PQstatus");
    load(l.PQunescapeBytea, "PQunescapeBytea");
    load(l.PQreset, "PQreset");
    load(l.PQtransactionStatus, "PQtransactionStatus");
    return l;
  }();
  return loaded;
}

}  // namespace

struct Connection {
  PGconn* conn = nullptr;
  int changes = 0;
  int next_name = 0;
  // Server-side prepared statements by SQL text: preparing the same text again (the API builds a
  // statement per request) reuses one, so a long-lived connection holds a bounded number.
  std::map<std::string, std::pair<std::string, int>, std::less<>> prepared;
  std::map<std::string, std::string> texts;  // statement name -> its SQL ($N placeholders)
  std::set<std::string> live;                // names prepared in the current session
  std::uint64_t session = 1;                 // bumped at each reconnection
  bool in_transaction = false;               // as the last statement left it
  bool lost_transaction = false;             // lost inside a transaction: only ROLLBACK is taken
  ~Connection() {
    if (conn != nullptr) lib().PQfinish(conn);
  }

  // A connection that broke (the server restarted, failed over, or ended the session) is opened
  // again before the next statement; statements prepared before are prepared again when used. A
  // transaction that was open is gone with the old session: until the caller's ROLLBACK, its
  // statements fail, so the rest of it never commits on its own.
  tl::expected<void, Error> ready() {
    if (lib().PQstatus(conn) == CONNECTION_OK) return {};
    lib().PQreset(conn);
    if (lib().PQstatus(conn) != CONNECTION_OK) {
      return tl::unexpected(Error{"08006", "the connection to PostgreSQL was lost and cannot be opened again: " +
                                               std::string(lib().PQerrorMessage(conn))});
    }
    live.clear();
    ++session;
    if (in_transaction) lost_transaction = true;
    in_transaction = false;
    return {};
  }
  // After a statement: whether a transaction is open (kept as it was if the connection broke).
  void settle() {
    if (lib().PQstatus(conn) != CONNECTION_OK) return;
    in_transaction = lib().PQtransactionStatus(conn) != PQTRANS_IDLE;
  }
  [[nodiscard]] Error lost() const {
    return Error{"08006", "the connection to PostgreSQL was lost during this transaction, which was rolled back"};
  }
};

namespace {

std::string trimmed(const char* message) {
  std::string m = message != nullptr ? message : "";
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  for (char& c : m) {
    if (c == '\n') c = ' ';
  }
  return m;
}

Error result_error(const PGresult* r, PGconn* conn) {
  Error e;
  if (r != nullptr) {
    const char* state = lib().PQresultErrorField(r, PG_DIAG_SQLSTATE);
    e.sqlstate = state != nullptr ? state : "";
    // The primary message and its detail (not "ERROR:  ..." with hints and context).
    const char* primary = lib().PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char* detail = lib().PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    e.message = primary != nullptr ? trimmed(primary) : trimmed(lib().PQresultErrorMessage(r));
    if (detail != nullptr) e.message += ": " + trimmed(detail);
  }
  if (e.message.empty()) e.message = trimmed(lib().PQerrorMessage(conn));
  if (e.message.empty()) e.message = "unknown PostgreSQL error";
  return e;
}

int affected(const PGresult* r) {
  const char* n = lib().PQcmdTuples(const_cast<PGresult*>(r));
  int v = 0;
  if (n != nullptr && *n != '\0') std::from_chars(n, n + std::char_traits<char>::length(n), v);
  return v;
}

constexpr unsigned kByteaOid = 17;

}  // namespace

std::string redact(std::string_view url) {
  // URL form: scheme://user:password@host... ; keyword form: ... password=secret ...
  std::string out(url);
  if (auto scheme = out.find("://"); scheme != std::string::npos) {
    const auto at = out.find('@', scheme + 3);
    const auto slash = out.find('/', scheme + 3);
    if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
      const auto colon = out.find(':', scheme + 3);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  for (std::size_t pos = 0; (pos = out.find("password=", pos)) != std::string::npos;) {
    const bool starts_word = pos == 0 || out[pos - 1] == ' ' || out[pos - 1] == '?' || out[pos - 1] == '&';
    pos += 9;
    if (!starts_word) continue;
    auto end = pos;
    while (end < out.size() && out[end] != ' ' && out[end] != '&') ++end;
    out.replace(pos, end - pos, "***");
  }
  return out;
}

std::string translate_placeholders(std::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int next = 0;
  for (std::size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (c == '\'' || c == '"') {  // a quoted string or identifier ('' and "" escape themselves)
      const auto end = sql.find(c, i + 1);
      const auto stop = end == std::string_view::npos ? sql.size() : end + 1;
      out.append(sql.substr(i, stop - i));
      i = stop - 1;
      continue;
    }
    if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {  // a comment to the end of the line
      const auto end = sql.find('\n', i);
      const auto stop = end == std::string_view::npos ? sql.size() : end;
      out.append(sql.substr(i, stop - i));
      i = stop - 1;
      continue;
    }
    if (c != '?') {
      out += c;
      continue;
    }
    std::size_t j = i + 1;
    while (j < sql.size() && std::isdigit(static_cast<unsigned char>(sql[j]))) ++j;
    out += '$';
    if (j > i + 1) {
      out.append(sql.substr(i + 1, j - i - 1));
      i = j - 1;
    } else {
      out += std::to_string(++next);
    }
  }
  return out;
}

void Stmt::Clear::operator()(pg_result* r) const { lib().PQclear(r); }

Stmt& Stmt::bind(int index, std::string_view text) {
  if (index >= 1 && index <= params_) bound_[static_cast<std::size_t>(index - 1)] = {std::string(text), false};
  return *this;
}
Stmt& Stmt::bind_blob(int index, std::string_view bytes) {
  if (index >= 1 && index <= params_) bound_[static_cast<std::size_t>(index - 1)] = {std::string(bytes), true};
  return *this;
}
Stmt& Stmt::bind(int index, std::int64_t value) { return bind(index, std::string_view(std::to_string(value))); }
Stmt& Stmt::bind_null(int index) {
  if (index >= 1 && index <= params_) bound_[static_cast<std::size_t>(index - 1)] = {std::nullopt, false};
  return *this;
}

tl::expected<bool, Error> Stmt::step() {
  if (conn_ == nullptr) return tl::unexpected(Error{"", "statement is not prepared"});
  if (!ran_) {
    if (auto r = conn_->ready(); !r) return tl::unexpected(r.error());
    if (conn_->lost_transaction) return tl::unexpected(conn_->lost());
    if (!conn_->live.contains(name_)) {
      // Prepared in an earlier session of this connection.
      std::unique_ptr<PGresult, Clear> p(lib().PQprepare(conn_->conn, name_.c_str(), conn_->texts[name_].c_str(), 0, nullptr));
      if (!p || lib().PQresultStatus(p.get()) != PGRES_COMMAND_OK) return tl::unexpected(result_error(p.get(), conn_->conn));
      conn_->live.insert(name_);
    }
    std::vector<const char*> values(bound_.size());
    std::vector<int> lengths(bound_.size());
    std::vector<int> formats(bound_.size());
    for (std::size_t i = 0; i < bound_.size(); ++i) {
      values[i] = bound_[i].value ? bound_[i].value->data() : nullptr;
      lengths[i] = bound_[i].value ? static_cast<int>(bound_[i].value->size()) : 0;
      formats[i] = bound_[i].binary ? 1 : 0;
    }
    result_.reset(lib().PQexecPrepared(conn_->conn, name_.c_str(), params_, values.data(), lengths.data(), formats.data(), 0));
    conn_->settle();
    ran_ = true;
    row_ = -1;
    const auto status = result_ ? lib().PQresultStatus(result_.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      Error e = result_error(result_.get(), conn_->conn);
      result_.reset();
      return tl::unexpected(std::move(e));
    }
    conn_->changes = affected(result_.get());
  }
  if (!result_) return false;
  if (row_ + 1 < lib().PQntuples(result_.get())) {
    ++row_;
    return true;
  }
  return false;
}

void Stmt::reset() {
  result_.reset();
  ran_ = false;
  row_ = -1;
  for (auto& p : bound_) p = Param{};
}

std::int64_t Stmt::int64(int column) const {
  if (!result_ || row_ < 0 || lib().PQgetisnull(result_.get(), row_, column)) return 0;
  const char* v = lib().PQgetvalue(result_.get(), row_, column);
  std::int64_t out = 0;
  std::from_chars(v, v + lib().PQgetlength(result_.get(), row_, column), out);
  return out;
}

std::string Stmt::text(int column) const {
  if (!result_ || row_ < 0 || lib().PQgetisnull(result_.get(), row_, column)) return {};
  const char* v = lib().PQgetvalue(result_.get(), row_, column);
  const auto n = static_cast<std::size_t>(lib().PQgetlength(result_.get(), row_, column));
  if (lib().PQftype(result_.get(), column) != kByteaOid) return std::string(v, n);
  std::size_t size = 0;
  unsigned char* bytes = lib().PQunescapeBytea(reinterpret_cast<const unsigned char*>(v), &size);
  if (bytes == nullptr) return {};
  std::string out(reinterpret_cast<const char*>(bytes), size);
  lib().PQfreemem(bytes);
  return out;
}

bool Stmt::is_null(int column) const {
  return !result_ || row_ < 0 || lib().PQgetisnull(result_.get(), row_, column) != 0;
}

Db::Db(Db&&) noexcept = default;
Db& Db::operator=(Db&&) noexcept = default;
Db::~Db() = default;

tl::expected<Db, Error> Db::open(const std::string& url) {
  if (!lib().error.empty()) return tl::unexpected(Error{"", lib().error});
  Db db;
  db.conn_ = std::make_unique<Connection>();
  db.conn_->conn = lib().PQconnectdb(url.c_str());
  if (db.conn_->conn == nullptr) return tl::unexpected(Error{"", "out of memory connecting to PostgreSQL"});
  if (lib().PQstatus(db.conn_->conn) != CONNECTION_OK) {
    // libpq's message names the host and port, never the password.
    return tl::unexpected(Error{"", "cannot connect to PostgreSQL at '" + redact(url) + "': " + trimmed(lib().PQerrorMessage(db.conn_->conn))});
  }
  // Notices (e.g. "relation already exists, skipping") are not errors: not on stderr.
  lib().PQsetNoticeProcessor(db.conn_->conn, [](void*, const char*) {}, nullptr);
  return db;
}

tl::expected<void, Error> Db::exec(std::string_view sql) {
  if (auto ok = conn_->ready(); !ok) return tl::unexpected(ok.error());
  if (conn_->lost_transaction) {
    if (sql != "ROLLBACK") return tl::unexpected(conn_->lost());
    conn_->lost_transaction = false;  // the server rolled it back already
    return {};
  }
  std::unique_ptr<PGresult, Stmt::Clear> r(lib().PQexec(conn_->conn, std::string(sql).c_str()));
  conn_->settle();
  const auto status = r ? lib().PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && status != PGRES_EMPTY_QUERY) {
    return tl::unexpected(result_error(r.get(), conn_->conn));
  }
  conn_->changes = affected(r.get());
  return {};
}

tl::expected<Stmt, Error> Db::prepare(std::string_view sql) {
  Stmt s;
  s.conn_ = conn_.get();
  if (auto ok = conn_->ready(); !ok) return tl::unexpected(ok.error());
  if (auto it = conn_->prepared.find(sql); it != conn_->prepared.end()) {
    s.name_ = it->second.first;
    s.params_ = it->second.second;
  } else {
    const std::string name = "tg" + std::to_string(++conn_->next_name);
    const std::string text = translate_placeholders(sql);
    std::unique_ptr<PGresult, Stmt::Clear> r(lib().PQprepare(conn_->conn, name.c_str(), text.c_str(), 0, nullptr));
    if (!r || lib().PQresultStatus(r.get()) != PGRES_COMMAND_OK) return tl::unexpected(result_error(r.get(), conn_->conn));
    std::unique_ptr<PGresult, Stmt::Clear> d(lib().PQdescribePrepared(conn_->conn, name.c_str()));
    if (!d || lib().PQresultStatus(d.get()) != PGRES_COMMAND_OK) return tl::unexpected(result_error(d.get(), conn_->conn));
    s.name_ = name;
    s.params_ = lib().PQnparams(d.get());
    conn_->prepared.emplace(std::string(sql), std::pair{name, s.params_});
    conn_->texts.emplace(name, text);
    conn_->live.insert(name);
  }
  s.bound_.assign(static_cast<std::size_t>(s.params_), Stmt::Param{});
  return s;
}

int Db::changes() const { return conn_ ? conn_->changes : 0; }

std::uint64_t Db::session() const { return conn_ ? conn_->session : 0; }

}  // namespace tollgate::service::pg
