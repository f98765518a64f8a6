"""The HTML forms (Flask-WTF: every one carries a CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, HiddenField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, Regexp

from custody.events import ID
from web.names import KEY_ROLES

CODE = Regexp(ID, message=_l("Letters, digits and . _ : - only."))


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)])
    next = HiddenField()


class PostForm(FlaskForm):
    """A form that is only a button (logout, issue badges): the CSRF token is its content."""


class StationForm(FlaskForm):
    code = StringField(_l("Station code"), validators=[DataRequired(), Length(max=64), CODE])
    unit = SelectField(_l("Unit"), validators=[DataRequired()], choices=[])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    public_key = StringField(_l("Public key (base64 or hex, 32 bytes)"), validators=[DataRequired(), Length(max=100)])


class PersonForm(FlaskForm):
    staff_id = StringField(_l("Staff id"), validators=[DataRequired(), Length(max=64), CODE])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    unit = SelectField(_l("Unit"), validators=[DataRequired()], choices=[])


class UnitForm(FlaskForm):
    code = StringField(_l("Unit code"), validators=[DataRequired(), Length(max=32), CODE])
    kind = SelectField(_l("Kind"), validators=[DataRequired()], choices=[])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    parent = SelectField(_l("Parent unit"), validators=[Optional()], choices=[])


class RotateForm(FlaskForm):
    role = SelectField(_l("Role"), choices=[SelectChoice(r, KEY_ROLES[r])
                                            for r in ("label_issuer", "badge_issuer", "log_signer")])


class RevokeForm(FlaskForm):
    kid = StringField(_l("Key id"), validators=[DataRequired(), Regexp(r"^[0-9a-fA-F]{16}\Z")])
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


class AccountForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    display_name = StringField(_l("Display name"), validators=[Optional(), Length(max=100)])
    role = SelectField(_l("Role"), choices=[])
    unit = SelectField(_l("Unit"), validators=[Optional()], choices=[])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(min=10, max=256)])


class AccountToggleForm(FlaskForm):
    account_id = HiddenField(validators=[DataRequired(), Regexp(r"^\d{1,9}\Z")])
    disable = BooleanField()


class InvestigationForm(FlaskForm):
    """What is known of a leak (see ``custody investigate``); times are the exam's local time unless zoned."""

    subject = SelectField(_l("Subject"), choices=[], validate_choice=False, validators=[Length(max=16)])
    as_of = StringField(_l("As of (optional)"), validators=[Optional(), Length(max=40)],
                        render_kw={"type": "datetime-local", "step": "1"})
    item = StringField(_l("Leaked item (optional)"), validators=[Optional(), Length(max=64), CODE],
                       render_kw={"placeholder": "YW-P-K001-01"})
    unit = StringField(_l("Unit or room where it was found (optional)"), validators=[Optional(), Length(max=32), CODE],
                       render_kw={"placeholder": "360102"})
    leak_time = StringField(_l("Leak time (optional)"), validators=[Optional(), Length(max=40)],
                            render_kw={"type": "datetime-local", "step": "1"})
    photo = FileField(_l("Photo of the leaked paper or bag (optional)"),
                      render_kw={"accept": "image/jpeg,image/png,image/webp,image/bmp,image/tiff"})
