"""Join and rejoin codes: what a learner reads off a projector and types back, however they type it."""

from __future__ import annotations

import pytest

from kafkalab.classroom import codes


@pytest.mark.parametrize("length", [codes.JOIN_CODE_LENGTH, codes.REJOIN_CODE_LENGTH])
def test_a_new_code_has_the_length_asked_for_and_only_unambiguous_characters(length):
    for _ in range(200):
        code = codes.new_code(length)

        assert len(code) == length
        assert set(code) <= set(codes.ALPHABET)


def test_the_alphabet_has_no_look_alike_characters():
    assert not set("0O1IL") & set(codes.ALPHABET)


def test_what_a_learner_types_is_read_in_upper_case_without_spaces_or_dashes():
    assert codes.normalise("abc-def") == "ABCDEF"
    assert codes.normalise(" ab c\tdef ") == "ABCDEF"
    assert codes.normalise("abcd-efgh") == "ABCDEFGH"
    assert codes.normalise(" - ") == ""


def test_a_code_is_shown_in_groups_easy_to_read_out():
    assert codes.spaced("ABCDEF") == "ABC-DEF"
    assert codes.spaced("ABCDEFGH") == "ABCD-EFGH"


def test_the_rejoin_code_shown_matches_however_the_learner_types_it():
    digest = codes.rejoin_digest("learner-1", "ABCDEFGH")

    assert codes.rejoin_matches("learner-1", "abcd-efgh", digest)
    assert codes.rejoin_matches("learner-1", "ABCD EFGH", digest)


def test_a_wrong_rejoin_code_does_not_match():
    digest = codes.rejoin_digest("learner-1", "ABCDEFGH")

    assert not codes.rejoin_matches("learner-1", "ABCDEFGJ", digest)
    assert not codes.rejoin_matches("learner-1", "", digest)


def test_a_rejoin_code_proves_only_the_name_it_was_given_for():
    digest = codes.rejoin_digest("learner-1", "ABCDEFGH")

    assert not codes.rejoin_matches("learner-2", "ABCDEFGH", digest)
    assert codes.rejoin_digest("learner-2", "ABCDEFGH") != digest


def test_only_a_keyed_hash_of_the_rejoin_code_is_stored():
    digest = codes.rejoin_digest("learner-1", "ABCDEFGH")

    assert "ABCDEFGH" not in digest
    assert len(digest) == 64
