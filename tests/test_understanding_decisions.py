"""The matcher's decisions beyond the score: two needs, open questions, named members, owned topics,
anchors across particles and from an item's own questions, and the money verb an aspect keeps; and
(round 6) questions about an office itself, a done item as context, out-of-scope words that cross an
item's word, sit in a clause of context or are themselves asked for, open questions about a subject
several items share, and a name typed by ear. The last tests check the real faq/ and intents/ on
questions written for those kinds (not taken from dev.tsv).

Each test builds a tiny tree (tests/test_understanding_helpers.py) holding just the items the rule
is about, so it fails for the reason it names; where a rule can be switched off by a setting, the
test also shows the other outcome with it off.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.understanding.clauses import split_clauses
from bot.understanding.grams import anchor_grams
from bot.understanding.knowledge import Knowledge
from bot.understanding.loader import load_knowledge
from bot.understanding.matcher import MatcherSettings
from tests.test_understanding_helpers import (INTENTS, ROOT, assert_both_needs, assert_needs_listed, assert_decided, item_toml, write_tree)

#: The helpers' intents plus the stop words, aspect phrases and data these rules read.
EXTRA_INTENTS = INTENTS.replace('phrases = ["吗", "呢", "了", "的", "怎么", "什么", "可以", "能不能"]',
                                'phrases = ["吗", "呢", "了", "的", "怎么", "什么", "可以", "能不能", "我", "想", '
                                '"还", "要", "不", "啥", "个", "有"]').replace(
    'phrases = ["流程", "怎么办"]', 'phrases = ["流程", "怎么办", "怎么领", "怎么交"]')


def build(tmp_path: Path, items: dict[str, str], extra: str = "",
          settings: MatcherSettings | None = None) -> Knowledge:
    faq, intents_dir, catalog = write_tree(tmp_path, items=items, intents=EXTRA_INTENTS + extra, catalog=None)
    knowledge, holder = load_knowledge(faq, intents_dir, catalog, settings=settings)
    assert not holder.problems, holder.problems
    return knowledge


DIBAO = item_toml("civil.dibao", "最低生活保障申请", "民政", ["低保", "吃低保"],
                  ["家里困难咋个申请低保", "低保要准备啥子材料", "低保每个月发好多钱"])
PROOF = item_toml("civil.residence-proof", "社区居住证明开具", "民政", ["居住证明", "开证明"],
                  ["社区能开居住证明不", "开个证明要带啥子", "单位要住址的证明"])
SENIOR = item_toml("civil.senior-card", "老年人优待证办理", "民政", ["老年证", "优待证"],
                   ["老人坐公交车免费的证咋个办", "满了六十岁能办老年证不"])
ID_CARD = item_toml("police.id-card", "居民身份证换领补领", "公安", ["补办身份证", "身份证丢了"],
                    ["身份证过期了咋个换", "身份证掉了去哪里补"])


def test_two_clauses_asking_for_two_items_answer_one_offering_the_other(tmp_path: Path) -> None:
    knowledge = build(tmp_path, {"civil.dibao": DIBAO, "civil.residence-proof": PROOF})
    result = knowledge.match("我想办低保，还要开个证明")
    assert_both_needs(result, {"civil.dibao", "civil.residence-proof"})
    assert len(result.also) == 1


def test_a_clause_that_only_gives_context_is_no_second_need(tmp_path: Path) -> None:
    knowledge = build(tmp_path, {"civil.dibao": DIBAO, "civil.residence-proof": PROOF})
    result = knowledge.match("我是领低保的，单位要开个证明")
    assert result.action == "answer" and result.item == "civil.residence-proof" and not result.also


def test_an_out_of_scope_word_the_item_uses_itself_does_not_veto_it(tmp_path: Path) -> None:
    extra = '\n[out_of_scope]\nphrases = ["公交"]\n\n[cues]\n"civil.senior-card" = ["老人卡"]\n'
    knowledge = build(tmp_path, {"civil.senior-card": SENIOR, "police.id-card": ID_CARD}, extra)
    # 公交 is in the senior card's own questions, and 老人卡 still anchors it once 公交 is set aside
    assert knowledge.match("老人卡坐公交要钱不").item == "civil.senior-card"
    # the identity card never speaks of buses: the topic word vetoes it, though 身份证 anchors it
    question = "身份证坐公交车能用不"
    features = knowledge.matcher.features(knowledge.normalize(question))
    assert features[0][1] == "police.id-card" and features[0][0].score >= 35
    assert knowledge.match(question).action == "fallback"
    # unless the word only tells where the card was lost: a card lost on the bus is to be replaced
    assert knowledge.match("身份证落在公交车上了").item == "police.id-card"


def test_an_owned_topic_word_alone_is_still_out_of_scope(tmp_path: Path) -> None:
    extra = '\n[out_of_scope]\nphrases = ["公交"]\n\n[cues]\n"civil.senior-card" = ["公交卡"]\n'
    knowledge = build(tmp_path, {"civil.senior-card": SENIOR, "police.id-card": ID_CARD}, extra)
    question = "公交车的末班车"
    features = knowledge.matcher.features(knowledge.normalize(question))
    assert features[0][1] == "civil.senior-card" and features[0][0].score >= 35  # anchored by 公交 itself
    assert knowledge.match(question).action == "fallback"  # nothing but the topic word points at it


def test_an_items_materials_own_their_words(tmp_path: Path) -> None:
    # the helpers' items list 户口簿 among their materials
    extra = '\n[out_of_scope]\nphrases = ["户口簿"]\n\n[cues]\n"civil.dibao" = ["兜底"]\n'
    knowledge = build(tmp_path, {"civil.dibao": DIBAO, "police.id-card": ID_CARD}, extra)
    assert knowledge.match("家里困难想申请兜底，要带户口簿不").item == "civil.dibao"
    assert knowledge.match("户口簿丢了咋个补").action == "fallback"


def test_a_particle_inside_a_name_still_anchors(tmp_path: Path) -> None:
    divorce = item_toml("civil.divorce-registration", "离婚登记", "民政", ["离婚", "离婚手续"],
                        ["两个人都同意离婚咋个办", "离婚要带结婚证不", "离婚证在哪里领"])
    knowledge = build(tmp_path, {"civil.divorce-registration": divorce, "civil.dibao": DIBAO})
    normalized = knowledge.normalize("离了婚的证在哪里领")
    assert "b离婚" in anchor_grams(knowledge.matcher._core(normalized), normalized)
    assert knowledge.match("离了婚的证在哪里领").item == "civil.divorce-registration"


def test_a_word_only_one_items_questions_use_anchors_a_confident_match(tmp_path: Path) -> None:
    access = item_toml("disability.home-accessibility", "困难重度残疾人家庭无障碍改造", "残联", ["无障碍改造", "扶手"],
                       ["门口有台阶想改成斜坡", "厕所想装扶手", "无障碍改造要啥条件"])
    items = {"disability.home-accessibility": access, "civil.dibao": DIBAO}
    question = "门口台阶太高想改成斜坡"
    assert build(tmp_path / "on", items).match(question).item == "disability.home-accessibility"
    strict = MatcherSettings(loose_anchor_score=101.0)  # only names, aliases and cues anchor
    assert build(tmp_path / "off", items, settings=strict).match(question).action == "fallback"


def test_a_generic_word_inside_one_members_own_name_picks_that_member(tmp_path: Path) -> None:
    enroll = item_toml("medins.resident-enroll", "城乡居民基本医疗保险参保登记", "医保", ["办医保", "新生儿参保"],
                       ["刚生的娃娃咋个上医保", "没买过医保现在想参加"])
    payment = item_toml("medins.resident-payment", "城乡居民医保缴费", "医保", ["交医保", "医保缴费"],
                        ["今年医保好多钱", "医保啥时候截止"])
    extra = '\n[ambiguous]\n"医保" = ["medins.resident-enroll", "medins.resident-payment"]\n'
    knowledge = build(tmp_path, {"medins.resident-enroll": enroll, "medins.resident-payment": payment}, extra)
    assert knowledge.match("屋头老人交医保在哪里").item == "medins.resident-payment"
    assert knowledge.match("屋头老人办医保在哪里").item == "medins.resident-enroll"
    asked = knowledge.match("医保在哪里")
    assert asked.action == "clarify" and len(asked.candidates) == 2


@pytest.mark.parametrize("question", [
    "残疾人每个月有什么钱可以领",
    "残疾人每个月能领些什么",  # 些 between the verb and 什么 (能领些什么, 要办些啥子): the same open question
])
def test_an_open_question_two_items_answer_is_asked_back(tmp_path: Path, question: str) -> None:
    living = item_toml("disability.living-subsidy", "困难残疾人生活补贴", "残联", ["残疾人生活补贴", "两项补贴"],
                       ["残疾人家里困难每个月能领好多", "吃低保的残疾人补贴咋个申请"])
    nursing = item_toml("disability.nursing-subsidy", "重度残疾人护理补贴", "残联", ["护理补贴", "重度残疾护理补贴"],
                        ["一级残疾每个月能领好多", "二级残疾离不开人补贴咋个申请"])
    extra = '\n[cues]\n"disability.living-subsidy" = ["残疾"]\n"disability.nursing-subsidy" = ["残疾", "二级"]\n'
    items = {"disability.living-subsidy": living, "disability.nursing-subsidy": nursing}
    knowledge = build(tmp_path / "on", items, extra)
    asked = knowledge.match(question)
    assert asked.action == "clarify" and set(asked.candidates) == set(items)
    assert knowledge.match("二级残疾离不开人，有什么补贴").item == "disability.nursing-subsidy"
    never = MatcherSettings(open_question_margin=-1.0, subject_margin=-1.0)  # neither close scores nor a subject
    assert build(tmp_path / "off", items, extra, settings=never).match(question).action == "answer"


def test_an_aspect_phrase_keeps_its_money_verb(tmp_path: Path) -> None:
    claim = item_toml("hrss.resident-pension-claim", "城乡居民养老保险待遇领取申请", "人社", ["养老保险领取", "领养老金"],
                      ["满了六十岁咋个开始领", "每个月领好多"])
    enroll = item_toml("hrss.resident-pension-enroll", "城乡居民基本养老保险参保登记", "人社", ["养老保险参保", "交养老保险"],
                       ["每年交好多", "没交过现在能交不"])
    knowledge = build(tmp_path, {"hrss.resident-pension-claim": claim, "hrss.resident-pension-enroll": enroll})
    assert knowledge.aspect(knowledge.normalize("养老保险咋个领")) == ("steps", True)  # still the steps aspect
    assert knowledge.match("养老保险咋个领").item == "hrss.resident-pension-claim"
    assert knowledge.match("养老保险咋个交").item == "hrss.resident-pension-enroll"


# —— round 6: out-of-scope questions that name an item in passing, vague needs, names typed by ear ——

SSC = item_toml("hrss.social-security-card", "社会保障卡申领", "人社", ["社保卡", "新办社保卡"],
                ["第一次办社保卡要带啥", "社保卡在哪里办"])
CLAIM = item_toml("hrss.resident-pension-claim", "城乡居民养老保险待遇领取申请", "人社", ["养老金领取", "待遇领取"],
                  ["满了六十岁咋个开始领", "养老金每个月发好多"])
LOAN = item_toml("hrss.startup-loan", "创业担保贷款申请", "人社", ["创业贷款", "贴息贷款"],
                 ["开店想贷款咋个申请", "贷款要营业执照不", "做生意缺本钱能贷好多"])
VETERAN_CARD = item_toml("veterans.preferential-card", "退役军人优待证申领", "退役军人", ["优待证", "军人优待证"],
                         ["退役军人坐车优先的证咋个办", "优待证要带啥"])
VETERAN_PENSION = item_toml("veterans.pension", "优抚对象抚恤补助申领", "退役军人", ["优抚金", "抚恤补助"],
                            ["伤残军人每个月补助好多", "参战退役军人的补助咋个申请"])


def test_a_question_about_an_office_itself_falls_back(tmp_path: Path) -> None:
    knowledge = build(tmp_path, {"hrss.social-security-card": SSC, "civil.dibao": DIBAO})
    # 社保局 holds 社保, an anchor of the card: without the rule it is answered as the card
    assert "hrss.social-security-card" in dict((i, s) for s, i in knowledge.matcher.scores(knowledge.normalize("社保局几点下班")))
    assert knowledge.match("社保局几点下班").action == "fallback"
    assert knowledge.match("社保局周六上不上班").action == "fallback"
    assert knowledge.match("社保局中午休不休息").action == "fallback"  # a lunch break is its hours too
    assert knowledge.match("社保局晚上有人值班吗").action == "fallback"  # who is on duty: its hours too
    assert knowledge.match("社保卡在社保局哪里办").item == "hrss.social-security-card"  # names the item too


def test_a_done_item_is_context_for_what_is_asked_next(tmp_path: Path) -> None:
    knowledge = build(tmp_path, {"civil.dibao": DIBAO, "civil.residence-proof": PROOF})
    assert knowledge.match("低保办好了，单位的婚假放几天").action == "fallback"  # moved on to what no item knows
    assert knowledge.match("低保办好了，接下来想开个居住证明").item == "civil.residence-proof"
    assert knowledge.match("低保批下来了，每个月发好多钱").item == "civil.dibao"  # still about the done item


def test_a_topic_word_that_crosses_the_items_own_word_is_no_topic(tmp_path: Path) -> None:
    extra = '\n[out_of_scope]\nphrases = ["领养"]\n\n[cues]\n"hrss.resident-pension-claim" = ["养老金"]\n'
    knowledge = build(tmp_path, {"hrss.resident-pension-claim": CLAIM, "civil.dibao": DIBAO}, extra)
    assert knowledge.match("我妈满了六十岁，想领养老金要带啥").item == "hrss.resident-pension-claim"
    assert knowledge.match("想领养一个娃娃要带啥").action == "fallback"


def test_a_topic_word_in_a_clause_of_context_does_not_veto(tmp_path: Path) -> None:
    extra = '\n[out_of_scope]\nphrases = ["火车"]\n'
    knowledge = build(tmp_path, {"police.id-card": ID_CARD, "civil.dibao": DIBAO}, extra)
    assert knowledge.match("身份证掉了，明天要坐火车，咋个补").item == "police.id-card"
    # the clause that asks holds the topic word: it counts
    assert knowledge.match("身份证掉了，火车票在哪里买").action == "fallback"


def test_a_topic_word_asked_for_counts_though_the_item_owns_it(tmp_path: Path) -> None:
    extra = '\n[out_of_scope]\nphrases = ["营业执照"]\n\n[cues]\n"hrss.startup-loan" = ["小卖部"]\n'
    knowledge = build(tmp_path, {"hrss.startup-loan": LOAN, "civil.dibao": DIBAO}, extra)
    assert knowledge.match("开小卖部想贷款，要营业执照不").item == "hrss.startup-loan"  # a material of the loan
    assert knowledge.match("想开个小卖部，营业执照咋个办").action == "fallback"  # the licence itself


def test_an_open_question_about_a_subject_several_items_share_is_asked_back(tmp_path: Path) -> None:
    extra = ('\n[cues]\n"veterans.preferential-card" = ["退役军人"]\n'
             '"veterans.pension" = ["退役军人补助", "伤残军人"]\n')
    items = {"veterans.preferential-card": VETERAN_CARD, "veterans.pension": VETERAN_PENSION, "civil.dibao": DIBAO}
    knowledge = build(tmp_path / "on", items, extra)
    asked = knowledge.match("退役军人有啥子待遇")
    assert asked.action == "clarify" and set(asked.candidates) == {"veterans.preferential-card", "veterans.pension"}
    assert knowledge.match("伤残军人有啥子补助").item == "veterans.pension"  # a word of one item only
    off = MatcherSettings(subject_margin=-1.0)
    assert build(tmp_path / "off", items, extra, settings=off).match("退役军人有啥子待遇").action == "answer"


def test_a_bare_name_typed_by_ear_is_that_name(tmp_path: Path) -> None:
    knowledge = build(tmp_path, {"civil.dibao": DIBAO, "police.id-card": ID_CARD})
    assert knowledge.match("滴保").item == "civil.dibao"
    assert knowledge.match("滴保咋个申请").item == "civil.dibao"
    assert knowledge.match("滴水").action == "fallback"  # sounds like no name


#: Questions of the round's kinds, written for this test (not taken from tests/data/dev.tsv).
REAL_CASES = [
    # offices, and questions that moved on from a done item
    ("医保局周六上不上班", None), ("民政局下午几点开门", None), ("低保批下来了 婚假有几天", None),
    # out-of-catalogue services of the same areas
    ("卫生院几点开门", None), ("离婚以后娃娃的抚养权归哪个", None), ("土地承包到期了咋个续", None),
    ("租房合同要不要拿去备案", None), ("殡仪馆的灵堂咋个收费", None), ("想开个面馆 营业执照去哪里办", None),
    ("退伍了 政府给不给安排工作", None), ("党员的组织关系从外地转回来找哪个", None),
    # everyday words, homophones, situations
    ("拄拐的老人能去残联领拐棍不", "disability.assistive-device"),
    ("农合每年交好多钱", "medins.resident-payment"),
    ("老年人身份证丢了 下周要坐高铁 咋办", "police.id-card"),
    ("当过兵的 坐高铁能优先不", "veterans.preferential-card"),
    ("给娃娃上医保要带出生证明不", "medins.resident-enroll"),
    ("娃娃出生证明拿到了 接下来医保咋个上", "medins.resident-enroll"),
    ("收入不高 吃不上低保 有啥子认定", "civil.low-income-family"),
    # vague needs several items answer
    ("退伍军人有啥子福利待遇", "veterans.pension|veterans.preferential-card"),
    ("想回乡创业 政府有啥子扶持", "hrss.startup-loan|hrss.employment-card"),
    ("我想交社保 在哪里交", "hrss.flexible-employment-insurance|hrss.resident-pension-enroll"),
    ("今年的保险交好多钱", "hrss.resident-pension-enroll|medins.resident-payment"),
    ("老人的养老金咋个搞", "hrss.resident-pension-claim|hrss.pension-certification"),
    ("失业登记证在哪里办", "hrss.unemployment-registration|hrss.employment-card"),
    ("老人要人上门照顾 政府出钱不", "civil.home-care-service|civil.elderly-care-subsidy"),
    ("我们是农村的 去年医保断了 今年咋个交", "medins.resident-enroll|medins.resident-payment"),
    # and single-item questions of the same words stay answered
    ("二级残疾有啥子补贴", "disability.nursing-subsidy"), ("退伍军人优待证有啥子用", "veterans.preferential-card"),
    ("领养老金要带啥子", "hrss.resident-pension-claim"), ("滴保", "civil.dibao"),
]



@pytest.mark.parametrize(("question", "expected"), REAL_CASES)
def test_round_six_kinds_on_the_real_data(knowledge: Knowledge, question: str, expected: str | None) -> None:
    assert_decided(knowledge.match(question), expected)


#: Round 7: a generic word whose rest is everyday words (能领好多, 社区能管不, 能补点不) is asked back,
#: and so is one whose best item lies outside its items and is not named (困难家庭补贴 → not the
#: elderly-care subsidy); questions of the same words that name one item stay answered. Written for
#: this round's probe, not taken from dev.tsv; the asked-back ones are answered without the change.
ROUND_SEVEN_CASES = [
    ("丧葬费能领好多", "civil.funeral-subsidy|hrss.death-benefit"),
    ("残疾人补贴能领好多", "disability.living-subsidy|disability.nursing-subsidy"),
    ("老人没人照顾社区能管不", "civil.home-care-service|civil.elderly-care-subsidy"),
    ("日子难过政府能补点不", "civil.dibao|civil.low-income-family|civil.temporary-assistance"),
    ("困难家庭补贴要些啥子", "civil.dibao|civil.low-income-family|civil.temporary-assistance"),
    ("屋头困难想申请个补贴", "civil.dibao|civil.low-income-family|civil.temporary-assistance"),
    ("残疾人护理补贴能领好多", "disability.nursing-subsidy"), ("残疾证丢了咋个补", "disability.card-renew"),
    ("八十岁老人补贴咋个领", "civil.elderly-allowance"), ("参保职工去世了丧葬费找哪个领", "hrss.death-benefit"),
    ("困难家庭的老人补贴咋个申请", "civil.elderly-care-subsidy"),
]


@pytest.mark.parametrize(("question", "expected"), ROUND_SEVEN_CASES)
def test_round_seven_generic_words_on_the_real_data(knowledge: Knowledge, question: str, expected: str) -> None:
    assert_decided(knowledge.match(question), expected)


def test_a_rest_of_everyday_words_tells_no_member(knowledge: Knowledge) -> None:
    """补点 (after 看病花…) is in one member's questions only, but both members use 补 and 点: it tells
    them nothing (the lead was 10.9 before round 7), while a word only one member knows (刚满月: a first
    card) still does."""
    matcher = knowledge.matcher
    money = [matcher.index.position[i] for i in ("medins.manual-reimbursement", "medins.medical-assistance")]
    assert matcher.generic.lead(" 能补点不", money)[0] < matcher.settings.ambiguity_lead
    cards = [matcher.index.position[i] for i in ("hrss.social-security-card", "hrss.social-security-card-replace")]
    lead, leader, _ = matcher.generic.lead("孙子刚满月", cards)
    assert leader == "hrss.social-security-card" and lead >= matcher.settings.ambiguity_lead

REWARD = item_toml("health.only-child-reward", "农村部分计划生育家庭奖励扶助", "卫健", ["独生子女奖励", "计生奖励"],
                   ["独生子女父母满六十岁每年发的钱咋个领", "计划生育奖励扶助金要带啥子"])
SPECIAL = item_toml("health.family-planning-special-support", "计划生育特殊家庭特别扶助", "卫健", ["失独扶助", "特别扶助"],
                    ["独生子女去世了父母有啥子扶助", "独生子女伤残了有扶助金没得"])
SIBLINGS = '\n[ambiguous]\n"独生子女" = ["health.only-child-reward", "health.family-planning-special-support"]\n'


def test_a_close_sibling_is_offered_when_the_question_has_no_word_of_the_answer_alone(tmp_path: Path) -> None:
    items = {"health.only-child-reward": REWARD, "health.family-planning-special-support": SPECIAL}
    question = "生育扶助金在哪领"  # neither the generic word 独生子女 nor a word of one item
    assert_decided(build(tmp_path / "on", items, SIBLINGS).match(question),
                   "health.only-child-reward|health.family-planning-special-support")
    off = MatcherSettings(sibling_window=0.0, likelihood_weight=0.0)  # the rule alone: the score decides
    assert_decided(build(tmp_path / "off", items, SIBLINGS, settings=off).match(question), "health.only-child-reward")
    # a cue of the answer's own (年满) tells them apart: answered although the sibling is as close
    cue = SIBLINGS + '\n[cues]\n"health.only-child-reward" = ["年满"]\n'
    knowledge = build(tmp_path / "cue", items, cue)
    scores = dict((ident, score) for score, ident in knowledge.matcher.scores(knowledge.normalize("生育扶助金年满了在哪领")))
    assert scores["health.only-child-reward"] - scores["health.family-planning-special-support"] < 10.0
    assert_decided(knowledge.match("生育扶助金年满了在哪领"), "health.only-child-reward")


# —— round 9A: questions of a sibling family that a generic word, a list or a second clause leaves open ——

FUNERAL = item_toml("civil.funeral-subsidy", "惠民殡葬补贴", "民政", ["殡葬补贴", "火化补贴"],
                    ["火化费能减免不", "殡葬补贴要带啥子", "殡仪馆的费用政府补好多"])
DEATH = item_toml("hrss.death-benefit", "参保人员丧葬补助金和抚恤金", "人社", ["丧葬补助金", "抚恤金"],
                  ["参保人去世了家属能领啥", "老人去世了社保那边有钱领不", "去世以后个人账户的钱咋个退"])
AFTER_DEATH = ('\n[ambiguous]\n"丧葬费" = ["civil.funeral-subsidy", "hrss.death-benefit"]\n'
               '"去世" = ["civil.funeral-subsidy", "hrss.death-benefit"]\n')


def test_a_kin_generic_word_in_the_rest_tells_the_members_nothing(tmp_path: Path) -> None:
    """去世 is listed for both items like 丧葬费; only the death benefit's questions happen to say it, so
    read as the rest of 丧葬费 it made a lead and answered the benefit."""
    knowledge = build(tmp_path, {"civil.funeral-subsidy": FUNERAL, "hrss.death-benefit": DEATH}, AFTER_DEATH)
    matcher = knowledge.matcher
    members = [matcher.index.position[i] for i in ("civil.funeral-subsidy", "hrss.death-benefit")]
    joined = "".join(matcher._core(knowledge.normalize("人去世了 丧葬费在哪里领")))
    assert "去世" not in matcher.generic.without_kin(joined, members)
    assert_decided(knowledge.match("人去世了 丧葬费在哪里领"), "civil.funeral-subsidy|hrss.death-benefit")


def test_a_tiny_lead_does_not_answer_on_the_overall_gap(knowledge: Knowledge) -> None:
    """The rest of the generic word (在外面 …要 回来 after 保险转; 的 每年发好多 after 计生) leans to one member by
    less than one everyday character weighs; the whole question scores that member far ahead only on the
    wording of its sample questions. Asked back; with any positive lead enough, answered as before."""
    questions = ["在外面交的保险要转回来", "计生的钱每年发好多"]
    for question in questions:
        assert knowledge.match(question).action == "clarify"
    any_lead, _ = load_knowledge(ROOT / "faq", ROOT / "intents", settings=MatcherSettings(gap_min_lead=0.01))
    assert [any_lead.match(q).action for q in questions] == ["answer", "answer"]


PERMIT = item_toml("police.residence-permit", "居住证办理", "公安", ["居住证", "暂住证"],
                   ["外地人办居住证要带啥", "居住证过期了咋个续"])


def test_a_list_joined_by_haishi_is_no_clause_of_being(tmp_path: Path) -> None:
    """还是 between two names is "or"; read as 还 + 是 ("他还是低保户") it made the list a clause telling
    who someone is, and the two needs were dropped."""
    knowledge = build(tmp_path, {"civil.residence-proof": PROOF, "police.residence-permit": PERMIT})
    assert_decided(knowledge.match("娃娃读书要用 居住证明还是居住证 我分不清"),
                   "civil.residence-proof|police.residence-permit")
    assert_decided(knowledge.match("他还是低保户 居住证明要带啥"), "civil.residence-proof")


LIVING = item_toml("disability.living-subsidy", "困难残疾人生活补贴", "残联", ["残疾人生活补贴", "残疾人补贴"],
                   ["低保家庭的残疾人每个月能领好多", "残疾人补贴咋个申请"])


def test_a_word_read_across_the_joining_word_does_not_cut_the_list(tmp_path: Path) -> None:
    """保残 (a cue's pair, read across one character as in 离了婚) pairs the last character of 低保 with
    the first of 残疾人补贴 over 和: no word of either, so the joint is no cut word."""
    extra = '\n[cues]\n"disability.living-subsidy" = ["低保残疾人"]\n'
    knowledge = build(tmp_path, {"civil.dibao": DIBAO, "disability.living-subsidy": LIVING}, extra)
    assert_decided(knowledge.match("低保和残疾人补贴能一起领不"), "civil.dibao|disability.living-subsidy")


VOLUNTEER = item_toml("civil.volunteer-registration", "志愿者注册", "民政", ["志愿者注册", "当志愿者"],
                      ["想当志愿者咋个注册", "志愿服务时长在哪里查"])
ASSOCIATION = item_toml("civil.community-org-filing", "社区社会组织备案", "民政", ["社区社会组织备案", "协会备案"],
                        ["几个人想成立个协会要备案不", "广场舞队要不要去社区备案"])


def test_a_second_need_after_several_separators_still_adds(tmp_path: Path) -> None:
    """还想 then 跟 (here "with"): only the separator next to the clause was read, so the clause lost the
    还想 that makes it a second need."""
    (first, second) = split_clauses("想当志愿者 还想跟几个朋友成立个协会")
    assert second.adds and second.asks
    knowledge = build(tmp_path, {"civil.volunteer-registration": VOLUNTEER, "civil.community-org-filing": ASSOCIATION})
    assert_needs_listed(knowledge.match("想当志愿者 还想跟几个朋友成立个协会"),
                        "civil.volunteer-registration|civil.community-org-filing")
    assert_decided(knowledge.match("想当志愿者 跟几个朋友一起去"), "civil.volunteer-registration")


#: Round 9A on the real data: questions of the families independent writers mark ambiguous (a word of
#: both items, a list, 两项补贴, 计生, 就业失业登记), written for this round, not taken from the question
#: sets; each is answered with one item on the round-8 data. The single-item ones name a telling detail.
ROUND_NINE_CASES = [
    ("计生那个钱每年啥时候发", "health.only-child-reward|health.family-planning-special-support"),
    ("两项补贴咋个申请", "disability.living-subsidy|disability.nursing-subsidy"),
    ("自己交养老保险 交哪种好", "hrss.resident-pension-enroll|hrss.flexible-employment-insurance"),
    ("没得单位 自己交社保咋个交", "hrss.resident-pension-enroll|hrss.flexible-employment-insurance"),
    ("居住证明还是居住证 我也分不清", "civil.residence-proof|police.residence-permit"),
    ("低保和残疾人补贴能一起领不", "civil.dibao|disability.living-subsidy"),
    ("娃娃的证丢了 医院开的那个", "health.birth-certificate|health.vaccination-certificate"),
    ("就业失业登记在哪办", "hrss.unemployment-registration|hrss.employment-card"),
    ("社保卡丢了咋个补", "hrss.social-security-card-replace"), ("满80岁的高龄津贴咋个领", "civil.elderly-allowance"),
    ("第一次办残疾证要带啥", "disability.card-new"), ("跑外卖的 想自己交养老保险", "hrss.flexible-employment-insurance"),
    ("在家种地 自己交养老保险交哪个", "hrss.resident-pension-enroll"), ("计生特扶咋个申请", "health.family-planning-special-support"),
    ("就业失业登记证丢了咋个补", "hrss.employment-card"), ("宝宝满月了 医保咋个给他上", "medins.resident-enroll"),
    ("当兵受了伤 每个月的钱咋个领", "veterans.pension"), ("残疾人护理补贴咋个申请", "disability.nursing-subsidy"),
]


@pytest.mark.parametrize(("question", "expected"), ROUND_NINE_CASES)
def test_round_nine_sibling_families_on_the_real_data(knowledge: Knowledge, question: str, expected: str) -> None:
    assert_decided(knowledge.match(question), expected)


#: Round 9C on the real data (written for this round, not taken from the question sets): a generic word
#: read only loosely (养老金没到 in 养老金这个月咋个没到) — its kin 养老金 standing whole is no telling
#: word for the claim, and is cut together with it from the rest, so 没到 is not left to lead; a word of
#: one item (认证) still answers. Both questions were answered as the claim before the change.
ROUND_NINE_C_CASES = [
    ("我爸养老金这个月咋个没到", "hrss.resident-pension-claim|hrss.pension-certification"),
    ("我婆婆养老金这个月没到账 咋回事", "hrss.resident-pension-claim|hrss.pension-certification"),
    ("养老金这个月没到 说是没做认证 咋个认证", "hrss.pension-certification"),
]


@pytest.mark.parametrize(("question", "expected"), ROUND_NINE_C_CASES)
def test_a_loosely_read_generic_word_and_its_kin_tell_nothing(knowledge: Knowledge, question: str, expected: str) -> None:
    assert_decided(knowledge.match(question), expected)
