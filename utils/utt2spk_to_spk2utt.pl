#!/usr/bin/env perl
# Convert utt2spk ("<utt> <spk>" lines) to spk2utt ("<spk> <utt1> <utt2> ..."), reading the
# files given (or stdin) and writing stdout. Speakers are listed in order of first appearance
# and each speaker's utterances in input order, so a C-sorted utt2spk whose speaker ids
# prefix the utterance ids gives a C-sorted spk2utt.
#   utils/utt2spk_to_spk2utt.pl data/train/utt2spk > data/train/spk2utt
use strict;
use warnings;

my (@order, %utts);
while (my $line = <>) {
  chomp $line;
  my @f = split(' ', $line);
  @f == 2 or die "utt2spk_to_spk2utt.pl: $ARGV:$.: expected '<utt> <spk>', got '$line'\n";
  my ($utt, $spk) = @f;
  push @order, $spk unless exists $utts{$spk};
  push @{$utts{$spk}}, $utt;
}
print join(' ', $_, @{$utts{$_}}), "\n" for @order;
