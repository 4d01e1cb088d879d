// tollgate: promotes changes through environments by pull request.
#include <iostream>

#include <CLI/CLI.hpp>

#include "service/audit_command.hpp"
#include "service/inbox_command.hpp"
#include "service/serve_command.hpp"
#include "service/validate_command.hpp"

#ifndef TOLLGATE_VERSION
#define TOLLGATE_VERSION "0.0.0"
#endif

int main(int argc, char** argv) {
  CLI::App app{"tollgate: promotes changes through environments by pull request", "tollgate"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every command");

  tollgate::cli::ValidateArgs vargs;
  auto* validate = app.add_subcommand("validate", "Check pipeline files (.tollgate.yaml) and report every problem");
  validate->add_option("files", vargs.files, "Pipeline files to check (default: ./.tollgate.yaml)");
  validate->add_option("--format", vargs.format, "Output format")
      ->check(CLI::IsMember({"text", "json"}))
      ->default_str("text");
  validate->add_option("--root", vargs.root,
                       "Repository root that pr.body template paths are relative to (default: each file's directory)");
  bool no_source = false;
  validate->add_flag("--no-source", no_source, "Do not print the offending source line under each problem");

  std::string config_path = "tollgate.yaml";
  unsigned threads = 0;
  auto* serve = app.add_subcommand("serve", "Run the service: receive webhooks from the configured Git hosts");
  serve->add_option("--config,-c", config_path, "Service configuration file")->default_str("tollgate.yaml");
  serve->add_option("--threads", threads, "I/O threads (default: one per core)");

  tollgate::cli::InboxArgs iargs;
  auto* inbox = app.add_subcommand("inbox", "Print stored webhook deliveries as JSON lines (bodies decoded)");
  auto* inbox_config = inbox->add_option("--config,-c", iargs.config, "Service configuration naming the database")
                           ->default_str("tollgate.yaml");
  inbox->add_option("--database", iargs.database, "The database file itself")->excludes(inbox_config);
  inbox->add_option("--state", iargs.state, "Only deliveries in this state")
      ->check(CLI::IsMember({"new", "normalized", "ignored", "failed"}));
  inbox->add_option("--delivery", iargs.delivery, "Only the delivery with this id");
  std::int64_t limit = -1;
  auto* limit_opt = inbox->add_option("--limit", limit, "Only the newest N")->check(CLI::PositiveNumber);
  bool no_body = false;
  inbox->add_flag("--no-body", no_body, "Leave the bodies out");

  tollgate::cli::AuditArgs rargs, aargs;
  auto* runs = app.add_subcommand("runs", "Print the promotion runs as JSON lines (stages, PRs, status)");
  auto* runs_config = runs->add_option("--config,-c", rargs.config, "Service configuration naming the database")
                          ->default_str("tollgate.yaml");
  runs->add_option("--database", rargs.database, "The database file itself")->excludes(runs_config);
  runs->add_option("--run", rargs.run, "Only this run");
  runs->add_option("--status", rargs.status, "Only runs in this status")
      ->check(CLI::IsMember({"queued", "running", "succeeded", "failed", "aborted", "superseded"}));
  std::int64_t runs_limit = -1;
  auto* runs_limit_opt = runs->add_option("--limit", runs_limit, "Only the newest N")->check(CLI::PositiveNumber);
  auto* audit = app.add_subcommand("audit", "Print the audit log as JSON lines: every transition, command and approval with actor, time and reason");
  auto* audit_config = audit->add_option("--config,-c", aargs.config, "Service configuration naming the database")
                           ->default_str("tollgate.yaml");
  audit->add_option("--database", aargs.database, "The database file itself")->excludes(audit_config);
  audit->add_option("--run", aargs.run, "Only this run's entries");
  audit->add_flag("--jobs", aargs.jobs, "Also the side effects (jobs) with their outcome");
  std::int64_t audit_limit = -1;
  auto* audit_limit_opt = audit->add_option("--limit", audit_limit, "Only the newest N")->check(CLI::PositiveNumber);

  auto* version = app.add_subcommand("version", "Print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;  // usage error
  }

  if (*validate) {
    vargs.show_source = !no_source;
    return tollgate::cli::run_validate(vargs, std::cout, std::cerr);
  }
  if (*serve) return tollgate::cli::run_serve(config_path, threads);
  if (*inbox) {
    if (*limit_opt) iargs.limit = limit;
    iargs.with_body = !no_body;
    return tollgate::cli::run_inbox(iargs, std::cout, std::cerr);
  }
  if (*runs) {
    if (*runs_limit_opt) rargs.limit = runs_limit;
    return tollgate::cli::run_runs(rargs, std::cout, std::cerr);
  }
  if (*audit) {
    if (*audit_limit_opt) aargs.limit = audit_limit;
    return tollgate::cli::run_audit(aargs, std::cout, std::cerr);
  }
  if (*version) {
    std::cout << "tollgate " << TOLLGATE_VERSION << "\n";
    return 0;
  }
  return 2;
}
