#!/usr/bin/env perl
# Kaldi-style local job runner.
#
#   run.pl [options] [JOB=1:N] <log-file> <command> [args...]
#
# Runs <command> through bash, once or (with JOB=1:N) N times in parallel on this machine; in
# the log-file name and in the command, the word JOB (or whichever name is given before '=')
# is replaced by the job number. Each job's stdout and stderr go to its log file, framed by a
# header (the command, start time) and a footer (run time, exit code). Waits for every job
# and exits 1 if any failed, naming each failed job's log.
#
# Options (each takes a value):
#   --max-jobs-run <n>   jobs running at once (default: the number of CPUs)
#   --num-threads <n>, --mem <size>, --gpu <n>, --time <t>
#                        accepted for compatibility with the cluster wrappers (slurm.pl); no effect here
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Path qw(make_path);
use POSIX qw(strftime);

my %opt = ("max-jobs-run" => "", "num-threads" => "", mem => "", gpu => "", time => "");

sub usage {
  my ($msg) = @_;
  print STDERR "run.pl: $msg\n" if $msg;
  print STDERR "usage: run.pl [--max-jobs-run N] [JOB=1:N] <log-file> <command> [args...]\n"
             . "e.g.: run.pl JOB=1:4 exp/log/feats.JOB.log python -m x --job JOB\n";
  exit 1;
}

while (@ARGV && $ARGV[0] =~ /^--(.+)$/) {
  my $name = $1;
  $name =~ s/_/-/g;
  usage("unknown option --$1 (valid: " . join(", ", map { "--$_" } sort keys %opt) . ")")
    unless exists $opt{$name};
  shift @ARGV;
  usage("option --$name needs a value") unless @ARGV;
  $opt{$name} = shift @ARGV;
}
usage("--max-jobs-run must be a positive integer, got '$opt{'max-jobs-run'}'")
  if $opt{"max-jobs-run"} ne "" && $opt{"max-jobs-run"} !~ /^[1-9]\d*$/;

my ($jobvar, $first, $last) = ("", 1, 1);
if (@ARGV && $ARGV[0] =~ /^([A-Za-z_]\w*)=(\d+):(\d+)$/) {
  ($jobvar, $first, $last) = ($1, $2, $3);
  usage("bad range $ARGV[0]: start must be >= 1 and <= end") if $first < 1 || $last < $first;
  shift @ARGV;
} elsif (@ARGV && $ARGV[0] =~ /^[A-Za-z_]\w*=/ && $ARGV[0] !~ m{/}) {
  usage("bad job range '$ARGV[0]' (expected e.g. JOB=1:4)");
}
usage("missing log file and command") if @ARGV < 2;
my $log_pattern = shift @ARGV;

# Build the bash command line as Kaldi does: an argument without whitespace is taken as it is
# (so an escaped pipe, \|, becomes a pipe), one with whitespace is single-quoted.
my @words;
for my $a (@ARGV) {
  if ($a =~ /^\S+$/) { push @words, $a; }
  else { (my $q = $a) =~ s/'/'\\''/g; push @words, "'$q'"; }
}
my $cmd_pattern = join(" ", @words);

my $max_jobs = $opt{"max-jobs-run"};
if ($max_jobs eq "") {
  my $ncpu = `nproc 2>/dev/null`;
  chomp $ncpu;
  $max_jobs = ($ncpu =~ /^\d+$/ && $ncpu > 0) ? $ncpu : 1;
}

sub substitute {
  my ($s, $j) = @_;
  $s =~ s/\b$jobvar\b/$j/g if $jobvar ne "";
  return $s;
}

sub now { return strftime("%a %b %e %H:%M:%S %Z %Y", localtime); }

# Run one job in a child process; its exit status is the command's (1 if it was killed).
sub start_job {
  my ($j) = @_;
  my $log = substitute($log_pattern, $j);
  my $cmd = substitute($cmd_pattern, $j);
  my $dir = dirname($log);
  make_path($dir) unless -d $dir;
  my $pid = fork();
  die "run.pl: fork failed: $!\n" unless defined $pid;
  return $pid if $pid;
  open(my $fh, '>', $log) or do { print STDERR "run.pl: cannot write $log: $!\n"; exit 1; };
  print $fh "# $cmd\n# Started at " . now() . "\n#\n";
  close $fh;
  open(STDOUT, '>>', $log) or exit 1;
  open(STDERR, '>&', \*STDOUT) or exit 1;
  select(STDOUT); $| = 1;
  my $t0 = time();
  my $rc = system('bash', '-c', $cmd);
  my $code = $rc == -1 ? 127 : ($rc & 127) ? 128 + ($rc & 127) : $rc >> 8;
  print "# Accounting: time=" . (time() - $t0) . " threads=1\n";
  print "# Ended (code $code) at " . now() . "\n";
  exit($code == 0 ? 0 : ($code > 255 ? 1 : $code));
}

my %pid2job;
my @failed;
sub reap_one {
  my $pid = wait();
  return if $pid < 0;
  my $j = delete $pid2job{$pid};
  push @failed, $j if defined $j && $? != 0;
}

for my $j ($first .. $last) {
  reap_one() while scalar(keys %pid2job) >= $max_jobs;
  $pid2job{start_job($j)} = $j;
}
reap_one() while %pid2job;

my $njobs = $last - $first + 1;
if (@failed) {
  @failed = sort { $a <=> $b } @failed;
  if ($jobvar eq "") {
    print STDERR "run.pl: job failed, log is in $log_pattern\n";
  } else {
    print STDERR "run.pl: " . scalar(@failed) . " / $njobs failed, log is in "
               . join(", ", map { substitute($log_pattern, $_) } @failed) . "\n";
  }
  exit 1;
}
exit 0;
