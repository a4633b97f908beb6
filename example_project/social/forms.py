from django import forms


class TweetForm(forms.Form):
    text = forms.CharField(max_length=280, strip=True, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))
