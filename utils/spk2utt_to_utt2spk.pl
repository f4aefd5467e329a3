#!/usr/bin/env perl
# Convert spk2utt ("<spk> <utt1> <utt2> ...") to utt2spk ("<utt> <spk>"), in input order,
# reading the files given (or stdin) and writing stdout.
#   utils/spk2utt_to_utt2spk.pl data/train/spk2utt > data/train/utt2spk
use strict;
use warnings;

while (my $line = <>) {
  chomp $line;
  my @f = split(' ', $line);
  @f >= 2 or die "spk2utt_to_utt2spk.pl: $ARGV:$.: expected '<spk> <utt> ...', got '$line'\n";
  my $spk = shift @f;
  print "$_ $spk\n" for @f;
}
