"""The matcher's decisions beyond the score: two needs, open questions, named members, owned topics,
anchors across particles and from an item's own questions, and the money verb an aspect keeps.

Each test builds a tiny tree (tests/test_understanding_helpers.py) holding just the items the rule
is about, so it fails for the reason it names; where a rule can be switched off by a setting, the
test also shows the other outcome with it off.
"""

from __future__ import annotations

from pathlib import Path

from bot.understanding.knowledge import Knowledge
from bot.understanding.loader import load_knowledge
from bot.understanding.matcher import MatcherSettings, anchor_grams
from tests.test_understanding_helpers import INTENTS, item_toml, write_tree

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


def test_two_clauses_asking_for_two_items_are_asked_back(tmp_path: Path) -> None:
    knowledge = build(tmp_path, {"civil.dibao": DIBAO, "civil.residence-proof": PROOF})
    result = knowledge.match("我想办低保，还要开个证明")
    assert result.action == "clarify" and set(result.candidates) == {"civil.dibao", "civil.residence-proof"}


def test_a_clause_that_only_gives_context_is_no_second_need(tmp_path: Path) -> None:
    knowledge = build(tmp_path, {"civil.dibao": DIBAO, "civil.residence-proof": PROOF})
    result = knowledge.match("我是领低保的，单位要开个证明")
    assert result.action == "answer" and result.item == "civil.residence-proof"


def test_an_out_of_scope_word_the_item_uses_itself_does_not_veto_it(tmp_path: Path) -> None:
    extra = '\n[out_of_scope]\nphrases = ["公交"]\n\n[cues]\n"civil.senior-card" = ["老人卡"]\n'
    knowledge = build(tmp_path, {"civil.senior-card": SENIOR, "police.id-card": ID_CARD}, extra)
    # 公交 is in the senior card's own questions, and 老人卡 still anchors it once 公交 is set aside
    assert knowledge.match("老人卡坐公交要钱不").item == "civil.senior-card"
    # the identity card never speaks of buses: the topic word vetoes it, though 身份证 anchors it
    question = "身份证落在公交车上了"
    features = knowledge.matcher.features(knowledge.normalize(question))
    assert features[0][1] == "police.id-card" and features[0][0].score >= 35
    assert knowledge.match(question).action == "fallback"


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


def test_an_open_question_two_items_answer_is_asked_back(tmp_path: Path) -> None:
    living = item_toml("disability.living-subsidy", "困难残疾人生活补贴", "残联", ["残疾人生活补贴", "两项补贴"],
                       ["残疾人家里困难每个月能领好多", "吃低保的残疾人补贴咋个申请"])
    nursing = item_toml("disability.nursing-subsidy", "重度残疾人护理补贴", "残联", ["护理补贴", "重度残疾护理补贴"],
                        ["一级残疾每个月能领好多", "二级残疾离不开人补贴咋个申请"])
    extra = '\n[cues]\n"disability.living-subsidy" = ["残疾"]\n"disability.nursing-subsidy" = ["残疾", "二级"]\n'
    items = {"disability.living-subsidy": living, "disability.nursing-subsidy": nursing}
    knowledge = build(tmp_path / "on", items, extra)
    asked = knowledge.match("残疾人每个月有什么钱可以领")
    assert asked.action == "clarify" and set(asked.candidates) == set(items)
    assert knowledge.match("二级残疾离不开人，有什么补贴").item == "disability.nursing-subsidy"
    never = MatcherSettings(open_question_margin=-1.0)
    assert build(tmp_path / "off", items, extra, settings=never).match("残疾人每个月有什么钱可以领").action == "answer"


def test_an_aspect_phrase_keeps_its_money_verb(tmp_path: Path) -> None:
    claim = item_toml("hrss.resident-pension-claim", "城乡居民养老保险待遇领取申请", "人社", ["养老保险领取", "领养老金"],
                      ["满了六十岁咋个开始领", "每个月领好多"])
    enroll = item_toml("hrss.resident-pension-enroll", "城乡居民基本养老保险参保登记", "人社", ["养老保险参保", "交养老保险"],
                       ["每年交好多", "没交过现在能交不"])
    knowledge = build(tmp_path, {"hrss.resident-pension-claim": claim, "hrss.resident-pension-enroll": enroll})
    assert knowledge.aspect(knowledge.normalize("养老保险咋个领")) == ("steps", True)  # still the steps aspect
    assert knowledge.match("养老保险咋个领").item == "hrss.resident-pension-claim"
    assert knowledge.match("养老保险咋个交").item == "hrss.resident-pension-enroll"
