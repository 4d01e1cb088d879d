// bench_sqlite_floor: the least CPU SQLite itself needs to keep one delivery durable the way the
// issue asks (committed in WAL mode, synchronous=NORMAL), with nothing else around it: no server, no
// threads, no hand-off. Rows like tollgate's inbox rows (a 3.7 KB compressed body, the bench
// payload's size after LZ4; host, delivery id, event, repository) go into one table that is unique
// on (host, delivery id), in transactions of --batch rows, with SQLite's own automatic checkpoints
// (without them the WAL would grow without bound). Prints the process's CPU time per row.
//
// Usage: bench_sqlite_floor [--db FILE] [--rows 200000] [--batch 40] [--ids sequential|scattered]
//   scattered: delivery ids in no order (random GUIDs, as GitHub sends them)
#include <sqlite3.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

namespace {

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "bench_sqlite_floor: %s\n", msg.c_str());
  std::exit(2);
}

void exec(sqlite3* db, const char* sql) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) die(std::string(sql) + ": " + sqlite3_errmsg(db));
}

}  // namespace

int main(int argc, char** argv) {
  std::string path = "bench-sqlite-floor.db";
  long rows = 200000, batch = 40;
  bool scattered = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--db") path = value();
    else if (a == "--rows") rows = std::atol(value().c_str());
    else if (a == "--batch") batch = std::atol(value().c_str());
    else if (a == "--ids") {
      const std::string v = value();
      if (v != "sequential" && v != "scattered") die("--ids is 'sequential' or 'scattered', not '" + v + "'");
      scattered = v == "scattered";
    } else die("unknown option '" + a + "' (usage: bench_sqlite_floor [--db FILE] [--rows N] [--batch N] [--ids sequential|scattered])");
  }
  if (rows <= 0 || batch <= 0) die("--rows and --batch must be positive");
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) die("cannot open " + path);
  // tollgate's settings (service/inbox.cpp), but SQLite's automatic checkpoints instead of a thread.
  exec(db, "PRAGMA page_size=32768");
  exec(db, "PRAGMA journal_mode=WAL");
  exec(db, "PRAGMA synchronous=NORMAL");
  exec(db, "CREATE TABLE deliveries (id INTEGER PRIMARY KEY, host TEXT NOT NULL, delivery_id TEXT NOT NULL, "
           "event TEXT NOT NULL, repo TEXT NOT NULL, size INTEGER NOT NULL, encoding INTEGER NOT NULL, "
           "body BLOB NOT NULL, UNIQUE (host, delivery_id))");
  sqlite3_stmt* insert = nullptr;
  if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO deliveries (host, delivery_id, event, repo, size, encoding, body) "
                             "VALUES ('github', ?, 'pull_request', 'octo-org/octo-repo', 25618, 1, ?)", -1, &insert, nullptr) != SQLITE_OK) {
    die(sqlite3_errmsg(db));
  }
  std::mt19937_64 rng(42);
  std::string body(3709, '\0');  // incompressible, like LZ4's output
  for (char& c : body) c = static_cast<char>(rng());
  // The ids, made before the clock starts.
  std::vector<std::string> ids(static_cast<std::size_t>(rows));
  for (long i = 0; i < rows; ++i) {
    char id[40];
    const unsigned long long x = scattered ? rng() : static_cast<unsigned long long>(i);
    std::snprintf(id, sizeof id, "%016llx-11ef-9b1e-0242ac120002", x);
    ids[static_cast<std::size_t>(i)] = id;
  }
  const double start = cpu_seconds();
  for (long i = 0; i < rows; i += batch) {
    exec(db, "BEGIN IMMEDIATE");
    for (long j = i; j < i + batch && j < rows; ++j) {
      const std::string& id = ids[static_cast<std::size_t>(j)];
      sqlite3_bind_text(insert, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
      sqlite3_bind_blob(insert, 2, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
      if (sqlite3_step(insert) != SQLITE_DONE) die(sqlite3_errmsg(db));
      sqlite3_reset(insert);
    }
    exec(db, "COMMIT");
  }
  const double spent = cpu_seconds() - start;
  std::printf("sqlite floor: %ld rows of %zu bytes, %ld per commit, ids %s: %.2f us of CPU per row\n", rows, body.size(),
              batch, scattered ? "scattered" : "sequential", spent / static_cast<double>(rows) * 1e6);
  sqlite3_finalize(insert);
  sqlite3_close(db);
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  return 0;
}
