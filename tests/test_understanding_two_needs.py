"""Questions that carry two needs, and questions that only look like it (round 6).

Data-driven on the real ``faq/`` and ``intents/``: the rule is about how residents phrase things, so
the cases are residents' questions and the items are the catalogue's. Three kinds:

* two needs in one message: two things listed by a part of their names (养老和医保, 身份证社保卡都…),
  which must be asked back with both items offered; or a second clause added with 也/还/再/顺便 that is
  short or only describes ("工资也不给", "把医保也上了"), which must be answered about one need carrying
  the other in ``also`` (the reply offers it next; see bot/understanding/needs.py for why not a clarify);
* context and one need, which must be answered with the item asked for — not the one named as what
  was already done ("结婚证已经领了，还想问下居住证咋个办");
* one need whose words touch another item (两样材料, one item's two benefits, 还 meaning "still"),
  which must keep being answered.

The first two kinds fail on the round-5 matcher; the third guards the rule against over-reach.
"""

from __future__ import annotations

import pytest

from bot.understanding.knowledge import Knowledge
from tests.test_understanding_helpers import assert_both_needs, assert_needs_listed

#: (question, the items a clarify must offer): two things listed.
LISTED = [
    # listed by a part of their names, joined by 和/跟/还有/或者/还是
    ("医保跟养老保险都在哪里交", {"medins.resident-payment", "hrss.resident-pension-enroll"}),
    ("在外地交的养老和医保都想转回旺苍", {"hrss.pension-transfer", "medins.transfer"}),
    ("医保和社保都要从广东转回来", {"medins.transfer", "hrss.pension-transfer"}),
    ("新生儿的医保和社保卡一起咋个办", {"medins.resident-enroll", "hrss.social-security-card"}),
    ("失业证明跟失业金能一起办不", {"hrss.unemployment-registration", "hrss.unemployment-benefit"}),
    ("护理补贴和生活补贴能一起领吗", {"disability.nursing-subsidy", "disability.living-subsidy"}),
    ("出生证还有疫苗本都要补办", {"health.birth-certificate", "health.vaccination-certificate"}),
    ("低保或者特困 我家符合哪个", {"civil.dibao", "civil.extreme-poverty"}),
    ("钱包遭偷了 里头有身份证和残疾证", {"police.id-card", "disability.card-renew"}),
    ("给娃娃报名读书 要居住证还是社区开的居住证明", {"police.residence-permit", "civil.residence-proof"}),
    # side by side, taken together by 都
    ("钱包掉了 身份证社保卡都在里头", {"police.id-card", "hrss.social-security-card-replace"}),
    # a modifier both share: 残疾人的证 and 残疾人的补贴
    ("残疾人的证和补贴怎么办", {"disability.card-new", "disability.living-subsidy", "disability.nursing-subsidy"}),
]

#: (question, the items answered and offered): a second clause that adds a matter (也, 还, 另外, 顺便),
#: short or only describing.
TWO_NEEDS = [
    ("在工地摔伤了，工资也不给", {"hrss.work-injury", "hrss.wage-arrears"}),
    ("在工地受了伤 老板工资也不结 咋办", {"hrss.work-injury", "hrss.wage-arrears"}),
    ("工伤了老板还欠着工资不给", {"hrss.work-injury", "hrss.wage-arrears"}),
    ("老板不给钱还受了伤", {"hrss.work-injury", "hrss.wage-arrears"}),
    ("娃娃的疫苗本丢了，出生证也找不到了", {"health.vaccination-certificate", "health.birth-certificate"}),
]

#: (question, the items listed): a second need asked for outright (顺便, 也想, 还想, 另外): both asked back,
#: to take one after the other (round 16; answered one offering the other before).
NEEDS_ASKED_OUTRIGHT = [
    ("生了娃要办出生证，顺便把医保也上了", {"health.birth-certificate", "medins.resident-enroll"}),
    ("社保卡坏了要换，医保电子凭证也想开通", {"hrss.social-security-card-replace", "medins.e-voucher"}),
    ("老板拖了三个月工资，我还想申请个公益岗", {"hrss.wage-arrears", "hrss.public-welfare-job"}),
    ("在外地住院的钱要报销，另外慢性病卡也想办", {"medins.manual-reimbursement", "medins.chronic-disease"}),
]

#: (question, the one item to answer): what was done or who the resident is, then the need.
CONTEXT_AND_NEED = [
    ("结婚证已经领了，还想问下居住证咋个办", "police.residence-permit"),
    ("结婚证办好了，想问下居住证明咋个开", "civil.residence-proof"),
    ("出生证领了，娃娃的疫苗本在哪里办", "health.vaccination-certificate"),
    ("社保卡补好了，医保电子凭证咋个激活", "medins.e-voucher"),
    ("办低保要带户口本和身份证吗", "civil.dibao"),  # two materials of one need, not two needs
]

#: (question, the one item to answer): one need, though its words touch another item.
ONE_NEED = [
    ("我是低保户，想办残疾人补贴", "disability.living-subsidy"),  # 是…户: who the resident is
    ("我是伤残军人，抚恤金咋个领", "veterans.pension"),  # the context tells which 抚恤金
    ("我是个体户，想自己交职工养老保险", "hrss.flexible-employment-insurance"),
    ("丧葬补助金和抚恤金咋个申请", "hrss.death-benefit"),  # both are the insured's death benefits
    ("骨灰盒和火化的钱能报不", "civil.funeral-subsidy"),
    ("公租房跟廉租房是一样的吗", "housing.public-rental"),  # two names of one item
    ("办残疾证要带身份证和社保卡吗", "disability.card-new"),  # what to bring, listed after 带
    ("职工养老和农村养老能合并不", "hrss.pension-transfer"),  # merging both is the transfer
    ("钱包被偷了，社保卡也在里面", "hrss.social-security-card-replace"),
    ("钱包丢了，身份证也没了", "police.id-card"),
    ("我爸上个月过世，火化的发票还在，能报点钱不", "civil.funeral-subsidy"),
    ("在工地上摔断了腿 老板不认账 咋个办", "hrss.work-injury"),
    ("刚好超过低保标准被退出来了 还能认定个啥子困难户不", "civil.low-income-family"),  # 还: "still"
    ("娃娃父母都去世了，现在跟外婆过，国家给不给生活费", "civil.orphan-allowance"),  # 父母都: no list
    # 又/也 before a state add a circumstance to the story, not a need (round 9b)
    ("我叔叔一个人住 又没收入 想申请特困供养 要带啥子", "civil.extreme-poverty"),
    ("老公瘫痪了 家里又没收入 重度残疾护理补贴咋个领", "disability.nursing-subsidy"),
    ("娃娃是脑瘫 家里又困难 康复训练有补助不", "disability.child-rehab"),
    # the other half of an either-or question, holding a name's sound only (去申 ~ 领取申请; round 9b)
    ("残疾人生活补贴是直接发还是要自己去申请", "disability.living-subsidy"),
    ("独生子女奖励是自动发还是要自己去申请", "health.only-child-reward"),
    # an item named only as who the resident is (不是低保户) in a clause asking about the need (round 9b)
    ("一级残疾 护理补贴咋个领 不是低保户也可以吗", "disability.nursing-subsidy"),
    ("重度残疾护理补贴 不是低保能领不", "disability.nursing-subsidy"),
]

#: (question, the one item to answer): one need, then a clause after a bare pause that asks further
#: about it — a paper, a certificate, pay, where to do it — in a word another item also uses (证书 of the
#: training, 凭证 of the e-voucher, 待遇 of the pension claim, 网上办 of the registration).
FURTHER_ASKED = [
    ("我想报名当志愿者，在哪里登记？能拿到证书不？", "civil.volunteer-registration"),
    ("想做点好事 去哪里注册 有没有证书", "civil.volunteer-registration"),
    ("医保关系要从外省转回旺苍，要开个啥子凭证", "medins.transfer"),
    ("退役军人优待证怎么申请，可以网上办吗", "veterans.preferential-card"),
    ("失业了想领失业金，每月的待遇要啥子材料", "hrss.unemployment-benefit"),
]

#: (question, the items answered and offered): a second need after a bare pause (the 顺便问下 that
#: would mark it is often cut as filler), which names its item or holds more than one word of it.
SECOND_NEED_AFTER_A_PAUSE = [
    ("想申请公租房，低保咋个办", {"housing.public-rental", "civil.dibao"}),
    ("想给孙子申请孤儿生活费，康复训练有没有救助", {"civil.orphan-allowance", "disability.child-rehab"}),
    ("想办居住证，老年证咋个办", {"police.residence-permit", "civil.senior-card"}),
]



@pytest.mark.parametrize(("question", "items"), LISTED, ids=[q for q, _ in LISTED])
def test_two_listed_needs_are_asked_back_with_both(knowledge: Knowledge, question: str, items: set[str]) -> None:
    result = knowledge.match(question)
    assert result.action == "clarify" and items <= set(result.candidates), result


@pytest.mark.parametrize(("question", "items"), TWO_NEEDS, ids=[q for q, _ in TWO_NEEDS])
def test_two_needs_are_answered_one_offering_the_other(knowledge: Knowledge, question: str, items: set[str]) -> None:
    result = knowledge.match(question)
    assert_both_needs(result, items)


@pytest.mark.parametrize(("question", "items"), NEEDS_ASKED_OUTRIGHT, ids=[q for q, _ in NEEDS_ASKED_OUTRIGHT])
def test_needs_asked_for_outright_are_listed(knowledge: Knowledge, question: str, items: set[str]) -> None:
    assert_needs_listed(knowledge.match(question), items)


@pytest.mark.parametrize(("question", "item"), CONTEXT_AND_NEED, ids=[q for q, _ in CONTEXT_AND_NEED])
def test_context_and_a_need_answer_the_need(knowledge: Knowledge, question: str, item: str) -> None:
    result = knowledge.match(question)
    assert (result.action, result.item, result.also) == ("answer", item, ()), result


@pytest.mark.parametrize(("question", "item"), ONE_NEED, ids=[q for q, _ in ONE_NEED])
def test_one_need_touching_another_item_is_answered(knowledge: Knowledge, question: str, item: str) -> None:
    result = knowledge.match(question)
    assert (result.action, result.item, result.also) == ("answer", item, ()), result


@pytest.mark.parametrize(("question", "item"), FURTHER_ASKED, ids=[q for q, _ in FURTHER_ASKED])
def test_a_further_question_on_the_need_is_no_second_need(knowledge: Knowledge, question: str, item: str) -> None:
    result = knowledge.match(question)
    assert (result.action, result.item, result.also) == ("answer", item, ()), result


@pytest.mark.parametrize(("question", "items"), SECOND_NEED_AFTER_A_PAUSE,
                         ids=[q for q, _ in SECOND_NEED_AFTER_A_PAUSE])
def test_a_second_need_after_a_pause_is_still_offered(knowledge: Knowledge, question: str,
                                                         items: set[str]) -> None:
    result = knowledge.match(question)
    assert_both_needs(result, items)


#: (question, the one item to answer): a clause that only tells the situation of the need, though it
#: names another item and holds a word of asking (round 9e): who someone is before 的 ("灵活就业的能领不"),
#: a service refused or not yet got ("申请低保没过", "还没办残疾证"), the other half of an either-or
#: ("还是后面来报"), papers asked about as materials ("要死亡证明和火化证吗", "要医院开证明不", a paper to
#: bring that was lost), a marriage or divorce that is done ("离婚了对方不给抚养费"), whether the need
#: requires something ("要每年审核不"), a business planned ("准备开个奶茶店").
SITUATION_NOT_A_NEED = [
    ("生育津贴 灵活就业的可以领不", "medins.maternity-benefit"),
    ("失业登记要带劳动合同不 灵活就业的能登记不", "hrss.unemployment-registration"),
    ("他家申请低保没通过 收入超了一点 能不能按低收入家庭报", "civil.low-income-family"),
    ("娃娃自闭症还没办残疾证 能申请康复训练的补助不", "disability.child-rehab"),
    ("惠民殡葬的钱是在殡仪馆直接减免还是后面来报", "civil.funeral-subsidy"),
    ("职工去世了 家属领丧葬补助金 要死亡证明和火化证吗", "hrss.death-benefit"),
    ("慢性病卡怎么办理 需要医院开证明吗", "medins.chronic-disease"),
    ("再婚领结婚证 要带以前的离婚证不 离婚证搞丢了咋办", "civil.marriage-registration"),
    ("离婚了男方不给抚养费 想告他又请不起律师", "justice.legal-aid"),
    # whether the need requires something, after its clause ("要每年审核不"), and a business planned
    ("他是三级残疾 能不能申请残疾人生活补贴 要每年审核不", "disability.living-subsidy"),
    ("准备开个奶茶店 听说要办就业创业证 咋个办", "hrss.employment-card"),
    ("给新生儿办居民医保 要出生证明还是户口本", "medins.resident-enroll"),  # two papers, either-or
]

#: (question, the items a clarify must offer): what is lacking, with a closing question about both.
LACKING_AND_BOTH_ASKED = [
    ("娃娃脑瘫 想做康复 还没办残疾证 两样咋个弄", {"disability.child-rehab", "disability.card-new"}),
]


@pytest.mark.parametrize(("question", "item"), SITUATION_NOT_A_NEED, ids=[q for q, _ in SITUATION_NOT_A_NEED])
def test_a_clause_telling_the_situation_is_no_second_need(knowledge: Knowledge, question: str, item: str) -> None:
    result = knowledge.match(question)
    assert (result.action, result.item, result.also) == ("answer", item, ()), result


@pytest.mark.parametrize(("question", "items"), LACKING_AND_BOTH_ASKED, ids=[q for q, _ in LACKING_AND_BOTH_ASKED])
def test_what_is_lacking_asked_about_with_the_need_is_offered(knowledge: Knowledge, question: str,
                                                                  items: set[str]) -> None:
    assert_needs_listed(knowledge.match(question), items)  # 两样: both asked for outright


def test_a_side_naming_its_item_in_full_is_not_read_as_the_generic_word(knowledge: Knowledge) -> None:
    """残疾人的证 is 残疾证 read loosely, and both card items are offered (round 15); 残疾人生活补贴 holds
    残疾人补贴 loosely too, but names the living subsidy alone: the nursing subsidy is not added."""
    cards = knowledge.match("残疾人的证和补贴怎么办")
    assert {"disability.card-new", "disability.card-renew"} <= set(cards.candidates), cards
    full = knowledge.match("困难残疾人生活补贴和低保能同时领不")
    assert "disability.nursing-subsidy" not in full.candidates, full
